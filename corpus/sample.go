package corpus

// Role is the speaker of a message.
type Role string

// The roles a conversation may hold.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Origin says how an instruction came to be, as in the PLLuMIC paper.
type Origin string

// The origins of PLLuMIC. OriginUnknown is the zero value: a file that does
// not say, read without a caller-supplied origin.
const (
	OriginUnknown   Origin = ""
	OriginOrganic   Origin = "organic"
	OriginConverted Origin = "converted"
	OriginSynthetic Origin = "synthetic"
)

// Message is one turn of a conversation.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content"`
}

// Sample is one instruction conversation: an optional system prompt followed by
// user/assistant turns in order. Multi-turn samples hold several user/assistant
// pairs; a trainable sample ends with an assistant turn.
type Sample struct {
	ID       string         `json:"id"`
	System   string         `json:"system,omitempty"`
	Messages []Message      `json:"messages"` // user and assistant turns only
	Origin   Origin         `json:"origin,omitempty"`
	Type     string         `json:"type,omitempty"`    // task type, e.g. "Dialog"
	Subtype  string         `json:"subtype,omitempty"` // task subtype
	Sources  []string       `json:"sources,omitempty"` // source references
	Language string         `json:"language,omitempty"`
	Meta     map[string]any `json:"meta,omitempty"`
}

// Conversation returns the sample as one message list, with the system prompt
// first when there is one: the shape chat templates take.
func (s *Sample) Conversation() []Message {
	out := make([]Message, 0, len(s.Messages)+1)
	if s.System != "" {
		out = append(out, Message{Role: RoleSystem, Content: s.System})
	}
	return append(out, s.Messages...)
}

// PreferencePair is a prompt conversation with a preferred (chosen) and a
// dispreferred (rejected) continuation. Prompt holds everything before the
// responses, system prompt included; Chosen and Rejected hold the responses,
// usually a single assistant message each.
type PreferencePair struct {
	ID             string    `json:"id"`
	Prompt         []Message `json:"prompt"`
	Chosen         []Message `json:"chosen"`
	Rejected       []Message `json:"rejected"`
	ChosenRating   *float64  `json:"chosen_rating,omitempty"`
	RejectedRating *float64  `json:"rejected_rating,omitempty"`
}
