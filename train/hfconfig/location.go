package hfconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Location is where a model's pieces are: the full model folder the
// weights come from and, for a PEFT adapter, the adapter folder.
type Location struct {
	// ModelDir holds config.json and the weights (the base for an
	// adapter).
	ModelDir string
	// AdapterDir holds adapter_config.json and adapter_model.safetensors;
	// "" for a full model folder.
	AdapterDir string
}

// IsAdapterDir reports whether dir is a PEFT adapter folder: it has
// adapter_config.json and no config.json.
func IsAdapterDir(dir string) bool {
	return exists(filepath.Join(dir, "adapter_config.json")) && !exists(filepath.Join(dir, "config.json"))
}

// Locate tells a full model folder (config.json) from a PEFT adapter
// folder (adapter_config.json) and, for an adapter, finds its base: base
// when given (the CLI's --base), else adapter_config.json's
// base_model_name_or_path. A relative base path is tried as given (from
// the working directory, as the training command that wrote it saw it),
// then relative to the adapter folder. pltune fetches nothing, so a hub
// name that is no local folder is an error that says to pass the base.
func Locate(dir, base string) (Location, error) {
	if exists(filepath.Join(dir, "config.json")) {
		if base != "" {
			return Location{}, fmt.Errorf("%s is a full model folder (config.json); a base folder is only for a LoRA adapter folder", dir)
		}
		return Location{ModelDir: dir}, nil
	}
	cfgPath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cfgPath)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir); err != nil {
			return Location{}, err
		}
		return Location{}, fmt.Errorf("%s is neither a model folder (config.json) nor a PEFT adapter folder (adapter_config.json)", dir)
	}
	if err != nil {
		return Location{}, err
	}
	if base != "" {
		if !exists(filepath.Join(base, "config.json")) {
			return Location{}, fmt.Errorf("base %s of adapter %s: no config.json there; want a Hugging Face model folder", base, dir)
		}
		return Location{ModelDir: base, AdapterDir: dir}, nil
	}
	var pc struct {
		Base string `json:"base_model_name_or_path"`
	}
	if err := json.Unmarshal(data, &pc); err != nil {
		return Location{}, fmt.Errorf("%s: %v", cfgPath, err)
	}
	if pc.Base == "" {
		return Location{}, fmt.Errorf("%s names no base model (base_model_name_or_path); give the base folder (--base DIR)", cfgPath)
	}
	tried := []string{pc.Base}
	if !filepath.IsAbs(pc.Base) {
		tried = append(tried, filepath.Join(dir, pc.Base))
	}
	for _, c := range tried {
		if exists(filepath.Join(c, "config.json")) {
			return Location{ModelDir: c, AdapterDir: dir}, nil
		}
	}
	return Location{}, fmt.Errorf("%s: base model %q is not a local model folder (looked for config.json in %s); give the base folder (--base DIR)",
		cfgPath, pc.Base, strings.Join(tried, " and "))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
