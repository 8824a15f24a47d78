package train

import (
	"fmt"

	"github.com/pltune/pltune/train/hfconfig"
)

// The architectures (config.json "architectures") pltune builds.
const (
	ArchLlama   = hfconfig.ArchLlama
	ArchMistral = hfconfig.ArchMistral
	ArchMixtral = hfconfig.ArchMixtral
)

// Config is a decoder model's Hugging Face config.json (see package
// hfconfig, which reads it without libtorch).
type Config = hfconfig.Config

// RopeScaling is config.json's rope_scaling (the "llama3" type).
type RopeScaling = hfconfig.RopeScaling

// LoadConfig reads and validates a config.json file.
func LoadConfig(path string) (*Config, error) {
	c, err := hfconfig.Load(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return c, nil
}

// ParseConfig decodes and validates config.json contents.
func ParseConfig(data []byte) (*Config, error) {
	c, err := hfconfig.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return c, nil
}
