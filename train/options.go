package train

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
)

// ModelOptions says where and in which precision a model lives. Devices
// and precisions are named by strings, so a program picks a GPU without
// importing the tensor backend.
type ModelOptions struct {
	// Device is "cpu" (the default, also for ""), "cuda" (the first GPU)
	// or "cuda:N". A CUDA device needs a libtorch built with CUDA (see
	// CUDAAvailable).
	Device string
	// DType is the parameters' precision: "f32" or "float32" (the
	// default, also for ""), "bf16" or "bfloat16", "f16" or "float16".
	// LoRA adapters and the optimizer state stay in float32 whatever it is.
	DType string
	Seed  int64 // random initialisation (NewModel) and LoRA init
	// GradientCheckpointing keeps only each decoder layer's input in
	// training and recomputes the layer in backward (ForwardLogProbs).
	GradientCheckpointing bool

	// dev and dt are Device and DType resolved by ensureDefaults: what
	// the model code uses.
	dev gotch.Device
	dt  gotch.DType
}

// CUDAAvailable reports whether the linked libtorch has CUDA and sees at
// least one GPU.
func CUDAAvailable() bool { return gotch.CUDA.IsAvailable() }

// ParseDevice checks a device name as ModelOptions.Device takes it and
// returns its canonical form ("cpu", "cuda:0", …).
func ParseDevice(name string) (string, error) {
	d, err := parseDevice(name)
	if err != nil {
		return "", err
	}
	if d.Name == "CPU" {
		return "cpu", nil
	}
	return "cuda:" + strconv.Itoa(d.Value), nil
}

// ParseDType checks a precision name as ModelOptions.DType takes it and
// returns its canonical form: "f32", "bf16" or "f16".
func ParseDType(name string) (string, error) {
	switch dt, err := parseDType(name); {
	case err != nil:
		return "", err
	case dt == gotch.BFloat16:
		return "bf16", nil
	case dt == gotch.Half:
		return "f16", nil
	default:
		return "f32", nil
	}
}

func parseDevice(name string) (gotch.Device, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch {
	case n == "" || n == "cpu":
		return gotch.CPU, nil
	case n == "cuda" || strings.HasPrefix(n, "cuda:"):
		idx := 0
		if rest, ok := strings.CutPrefix(n, "cuda:"); ok {
			i, err := strconv.Atoi(rest)
			if err != nil || i < 0 {
				return gotch.Device{}, fmt.Errorf("train: device %q: want cpu, cuda or cuda:N with N a GPU index (0, 1, …)", name)
			}
			idx = i
		}
		if !gotch.CUDA.IsAvailable() {
			return gotch.Device{}, fmt.Errorf("train: device %q: the linked libtorch has no CUDA or sees no GPU (point LIBTORCH at a CUDA build and rerun make setup)", name)
		}
		if n := gotch.CUDA.DeviceCount(); int64(idx) >= n {
			return gotch.Device{}, fmt.Errorf("train: device %q: libtorch sees %d GPU(s), cuda:0 to cuda:%d", name, n, n-1)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.Device{}, fmt.Errorf("train: device %q: want cpu, cuda or cuda:N", name)
}

func parseDType(name string) (gotch.DType, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "f32", "float32", "fp32":
		return gotch.Float, nil
	case "bf16", "bfloat16":
		return gotch.BFloat16, nil
	case "f16", "float16", "fp16", "half":
		return gotch.Half, nil
	}
	return gotch.Invalid, fmt.Errorf("train: dtype %q: want f32 (float32), bf16 (bfloat16) or f16 (float16)", name)
}

// ensureDefaults resolves Device and DType into the backend's values.
func (o *ModelOptions) ensureDefaults() error {
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	dt, err := parseDType(o.DType)
	if err != nil {
		return err
	}
	o.dev, o.dt = dev, dt
	return nil
}

// device is the resolved Device (valid after ensureDefaults).
func (o *ModelOptions) device() gotch.Device { return o.dev }

// dtype is the resolved DType (valid after ensureDefaults).
func (o *ModelOptions) dtype() gotch.DType { return o.dt }
