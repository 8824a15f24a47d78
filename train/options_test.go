package train

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"
)

func TestModelOptionsNames(t *testing.T) {
	for _, c := range []struct {
		device, dtype string
		dev           gotch.Device
		dt            gotch.DType
		err           string
	}{
		{"", "", gotch.CPU, gotch.Float, ""},
		{"cpu", "f32", gotch.CPU, gotch.Float, ""},
		{"CPU", "float32", gotch.CPU, gotch.Float, ""},
		{"cpu", "bf16", gotch.CPU, gotch.BFloat16, ""},
		{"cpu", "bfloat16", gotch.CPU, gotch.BFloat16, ""},
		{"cpu", "f16", gotch.CPU, gotch.Half, ""},
		{"cpu", "float16", gotch.CPU, gotch.Half, ""},
		{"gpu", "", gotch.CPU, gotch.Float, `device "gpu": want cpu, cuda or cuda:N`},
		{"cuda:x", "", gotch.CPU, gotch.Float, `device "cuda:x"`},
		{"cpu", "int8", gotch.CPU, gotch.Float, `dtype "int8": want f32`},
	} {
		o := ModelOptions{Device: c.device, DType: c.dtype}
		err := o.ensureDefaults()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q/%q: error %v; want one containing %q", c.device, c.dtype, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q/%q: %v", c.device, c.dtype, err)
			continue
		}
		if !sameDevice(o.device(), c.dev) || o.dtype() != c.dt {
			t.Errorf("%q/%q: %v %v; want %v %v", c.device, c.dtype, o.device(), o.dtype(), c.dev, c.dt)
		}
	}
	// Without CUDA, a cuda device is refused with a hint, not a crash on
	// the first tensor.
	if !CUDAAvailable() {
		o := ModelOptions{Device: "cuda"}
		if err := o.ensureDefaults(); err == nil || !strings.Contains(err.Error(), "no CUDA") {
			t.Errorf("cuda without CUDA: %v", err)
		}
	}
	if d, err := ParseDevice(" Cpu "); err != nil || d != "cpu" {
		t.Errorf("ParseDevice: %q %v", d, err)
	}
	if d, err := ParseDType("bfloat16"); err != nil || d != "bf16" {
		t.Errorf("ParseDType: %q %v", d, err)
	}
}

// FuzzParseNames: device, dtype and shard-size names never panic; what is
// accepted parses again to itself.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"cpu", "cuda:0", "bf16", "float16", "5GB", "2GiB", "1.5e3", "-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDevice(s); err == nil {
			if again, err := ParseDevice(d); err != nil || again != d {
				t.Errorf("device %q → %q → %q, %v", s, d, again, err)
			}
		}
		if d, err := ParseDType(s); err == nil {
			if again, err := ParseDType(d); err != nil || again != d {
				t.Errorf("dtype %q → %q → %q, %v", s, d, again, err)
			}
		}
		if n, err := ParseShardSize(s); err == nil && n <= 0 {
			t.Errorf("shard size %q → %d", s, n)
		}
	})
}
