package tokenize

// endOfTurnTokens are the tokens chat templates close a turn with, by
// family: Llama-3, ChatML (Qwen), Gemma, and the plain EOS of Mistral-style
// templates.
var endOfTurnTokens = []string{"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>"}

// StopIDs are the ids generation stops at: the end-of-turn tokens the
// vocabulary has, then the EOS token. A model saved for chat lists them in
// generation_config.json's eos_token_id.
func (t *Tokenizer) StopIDs() []int {
	var ids []int
	seen := map[int]bool{}
	add := func(tok string) {
		if tok == "" {
			return
		}
		if id, ok := t.TokenToID(tok); ok && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, tok := range endOfTurnTokens {
		add(tok)
	}
	add(t.Config().EOSToken)
	return ids
}

// PadID is the id batches are padded with: the pad token, else the EOS
// token, else 0. Padding is never attended to nor trained, so any id works;
// the pad token keeps dumps readable.
func (t *Tokenizer) PadID() int {
	for _, tok := range []string{t.Config().PadToken, t.Config().EOSToken} {
		if id, ok := t.TokenToID(tok); ok && tok != "" {
			return id
		}
	}
	return 0
}

// DocumentEndToken is the token that ends a pre-training document: the
// end-of-text token where the vocabulary has one (an instruct tokenizer's
// eos_token often ends a chat turn instead: Llama-3's <|eot_id|>, Qwen's
// <|im_end|>), else the EOS token.
func (t *Tokenizer) DocumentEndToken() string {
	for _, tok := range []string{"<|end_of_text|>", "<|endoftext|>"} {
		if _, ok := t.TokenToID(tok); ok {
			return tok
		}
	}
	return t.Config().EOSToken
}
