package openai

import (
	"encoding/json"
	"testing"
)

func FuzzContinuationLogprob(f *testing.F) {
	f.Add([]byte(`{"tokens":["a"," b"],"token_logprobs":[null,-1],"top_logprobs":[null,{" b":-1}],"text_offset":[0,1]}`), 1, 3, 0, 1)
	f.Add([]byte(`{"tokens":["a"],"token_logprobs":[null],"text_offset":[5]}`), 9, 1, 1, 0)
	f.Fuzz(func(t *testing.T, data []byte, ctxLen, promptLen, generated, nCtx int) {
		var lp logprobs
		if json.Unmarshal(data, &lp) != nil || len(lp.TextOffset) != len(lp.TokenLogprobs) {
			return
		}
		if generated < 0 || generated > 1 {
			return
		}
		var ctxTokens []string
		if nCtx >= 0 && nCtx <= len(lp.Tokens) {
			ctxTokens = lp.Tokens[:nCtx]
		}
		continuationLogprob(&lp, ctxTokens, ctxLen, promptLen, generated)
	})
}
