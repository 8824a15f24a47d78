package tokenize

import (
	"encoding/json"
	"fmt"
	"math"
)

// parseConfig reads tokenizer_config.json; specialMap (special_tokens_map.json,
// may be nil) fills the special tokens the config leaves unset.
func parseConfig(configJSON, specialMap []byte) (Config, error) {
	var c Config
	if len(configJSON) > 0 {
		if err := json.Unmarshal(configJSON, &c.Raw); err != nil {
			return c, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	var sm map[string]any
	if len(specialMap) > 0 {
		if err := json.Unmarshal(specialMap, &sm); err != nil {
			return c, fmt.Errorf("special_tokens_map.json: %w", err)
		}
	}
	tok := func(key string) (string, error) {
		for _, src := range []map[string]any{c.Raw, sm} {
			v, ok := src[key]
			if !ok || v == nil {
				continue
			}
			s, err := tokenString(v)
			if err != nil {
				return "", fmt.Errorf("%s: %w", key, err)
			}
			return s, nil
		}
		return "", nil
	}
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{{"bos_token", &c.BOSToken}, {"eos_token", &c.EOSToken}, {"pad_token", &c.PadToken}, {"unk_token", &c.UnkToken}} {
		if *f.dst, err = tok(f.key); err != nil {
			return c, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	for _, f := range []struct {
		key string
		dst **bool
	}{{"add_bos_token", &c.AddBOSToken}, {"add_eos_token", &c.AddEOSToken}} {
		switch v := c.Raw[f.key].(type) {
		case nil:
		case bool:
			*f.dst = &v
		default:
			return c, fmt.Errorf("tokenizer_config.json: %s is %T, want a boolean", f.key, v)
		}
	}
	switch v := c.Raw["chat_template"].(type) {
	case nil:
	case string:
		c.ChatTemplate = v
	case []any:
		c.ChatTemplates = map[string]string{}
		for i, e := range v {
			m, ok := e.(map[string]any)
			name, ok1 := m["name"].(string)
			tmpl, ok2 := m["template"].(string)
			if !ok || !ok1 || !ok2 {
				return c, fmt.Errorf("tokenizer_config.json: chat_template entry %d is not {\"name\": string, \"template\": string}", i)
			}
			c.ChatTemplates[name] = tmpl
		}
		c.ChatTemplate = c.ChatTemplates["default"]
	default:
		return c, fmt.Errorf("tokenizer_config.json: chat_template is %T, want a string or a list of {name, template}", v)
	}
	if v, ok := c.Raw["model_max_length"].(float64); ok && v > 0 && v < math.MaxInt32 {
		c.ModelMaxLength = int(v)
	}
	return c, nil
}

// tokenString reads a special token given as a string or as an AddedToken
// object {"content": ...}.
func tokenString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case map[string]any:
		if s, ok := v["content"].(string); ok {
			return s, nil
		}
		return "", fmt.Errorf("token object has no string \"content\"")
	}
	return "", fmt.Errorf("token is %T, want a string or {\"content\": ...}", v)
}
