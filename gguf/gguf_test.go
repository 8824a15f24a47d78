package gguf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
)

// sample builds a small file with every written type and a few metadata kinds.
func sample(t testing.TB) ([]byte, map[string][]float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	vals := map[string][]float32{}
	var infos []TensorInfo
	for _, c := range []struct {
		name string
		typ  TensorType
		dims []int64
	}{
		{"a.f32", F32, []int64{5, 3}},
		{"b.f16", F16, []int64{64, 2}},
		{"c.bf16", BF16, []int64{7}},
		{"d.q8_0", Q8_0, []int64{64, 3}},
	} {
		n := int64(1)
		for _, d := range c.dims {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		vals[c.name] = v
		infos = append(infos, TensorInfo{Name: c.name, Dims: c.dims, Type: c.typ})
	}
	kv := []KV{
		{"general.architecture", "llama"},
		{"general.name", "próbka „zażółć”"},
		{"llama.block_count", uint32(2)},
		{"llama.rope.freq_base", float32(500000)},
		{"tokenizer.ggml.tokens", []string{"<s>", "ż", "ółć"}},
		{"tokenizer.ggml.scores", []float32{0, -1.5, -2}},
		{"tokenizer.ggml.add_bos_token", true},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, kv, infos)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range infos {
		v := vals[ti.Name]
		if err := w.WriteTensor(ti.Name, func(out io.Writer) error {
			b, err := EncodeRow(nil, ti.Type, v)
			if err != nil {
				return err
			}
			_, err = out.Write(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), vals
}

func TestRoundTrip(t *testing.T) {
	data, vals := sample(t)
	f, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Get("general.name"); v != "próbka „zażółć”" {
		t.Errorf("general.name = %v", v)
	}
	if v, _ := f.Get("llama.block_count"); v != uint32(2) {
		t.Errorf("block_count = %v (%T)", v, v)
	}
	if v, _ := f.Get("tokenizer.ggml.tokens"); strings.Join(v.([]string), "|") != "<s>|ż|ółć" {
		t.Errorf("tokens = %v", v)
	}
	// Tolerances: exact for F32; half an ulp of each type's mantissa; Q8_0
	// half a step of its block scale.
	tol := map[string]float64{"a.f32": 0, "b.f16": 1.0 / 2048, "c.bf16": 1.0 / 256, "d.q8_0": 0}
	for name, want := range vals {
		got, err := f.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
		}
		for i := range want {
			lim := tol[name] * math.Abs(float64(want[i]))
			if name == "d.q8_0" {
				blk := want[i/Q8Block*Q8Block : i/Q8Block*Q8Block+Q8Block]
				var amax float64
				for _, x := range blk {
					amax = max(amax, math.Abs(float64(x)))
				}
				// Half a step, plus the fp16 rounding of the scale times |q| <= 127.
				lim = amax/127*(0.5+127.0/2048) + 1e-7
			}
			if d := math.Abs(float64(got[i] - want[i])); d > lim {
				t.Fatalf("%s[%d] = %v, want %v (diff %g > %g)", name, i, got[i], want[i], d, lim)
			}
		}
	}
}

func TestQ8BlockLayout(t *testing.T) {
	v := make([]float32, Q8Block)
	for i := range v {
		v[i] = float32(i) - 16
	}
	b, err := EncodeRow(nil, Q8_0, v)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 34 {
		t.Fatalf("a Q8_0 block is %d bytes, want 34 (fp16 scale + 32 int8)", len(b))
	}
	// max|x| = 16, so d = 16/127 and x = -16 maps to -127, 0 to 0, 15 to round(119.06) = 119.
	if q := int8(b[2]); q != -127 {
		t.Errorf("q[0] = %d, want -127", q)
	}
	if q := int8(b[2+16]); q != 0 {
		t.Errorf("q[16] = %d, want 0", q)
	}
	if q := int8(b[2+31]); q != 119 {
		t.Errorf("q[31] = %d, want 119", q)
	}
	if _, err := EncodeRow(nil, Q8_0, v[:31]); err == nil {
		t.Error("a Q8_0 row of 31 values was accepted")
	}
}

func TestWriterErrors(t *testing.T) {
	infos := []TensorInfo{{Name: "x", Dims: []int64{4}, Type: F32}}
	if _, err := NewWriter(io.Discard, []KV{{"k", uint32(1)}, {"k", uint32(2)}}, infos); err == nil {
		t.Error("a duplicate metadata key was accepted")
	}
	if _, err := NewWriter(io.Discard, nil, append(infos, infos[0])); err == nil {
		t.Error("a duplicate tensor was accepted")
	}
	w, err := NewWriter(io.Discard, nil, infos)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("y", func(io.Writer) error { return nil }); err == nil {
		t.Error("a tensor out of table order was accepted")
	}
	if err := w.WriteTensor("x", func(o io.Writer) error { _, err := o.Write(make([]byte, 12)); return err }); err == nil {
		t.Error("a tensor of the wrong size was accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close accepted a file with a tensor missing")
	}
}

func TestOpenRejectsDamage(t *testing.T) {
	data, _ := sample(t)
	cases := map[string][]byte{
		"truncated header": data[:20],
		"bad magic":        append([]byte("GGUX"), data[4:]...),
		"truncated data":   data[:len(data)-40], // past the last tensor's padding
	}
	huge := bytes.Clone(data)
	binary.LittleEndian.PutUint64(huge[8:], 1<<40) // tensor count
	cases["absurd tensor count"] = huge
	for name, b := range cases {
		if _, err := Open(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzOpen(f *testing.F) {
	data, _ := sample(f)
	f.Add(data)
	f.Add(data[:64])
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, ti := range file.Tensors {
			_, _ = file.ReadFloat32(ti.Name)
		}
	})
}

// TestGGUFPy reads a pltune-written file with gguf-py (llama.cpp's own Python
// package, pinned in the reference venv) and checks its metadata, tensor
// table and dequantized values, and that gguf-py's Q8_0 quantizer gives our
// bytes.
func TestGGUFPy(t *testing.T) {
	py := pyref.Require(t)
	data, vals := sample(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "x.gguf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	orig, _ := json.Marshal(map[string][]float32{"d.q8_0": vals["d.q8_0"]})
	origPath := filepath.Join(dir, "orig.json")
	if err := os.WriteFile(origPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, filepath.Join("testdata", "read_gguf.py"), path, origPath).Output()
	if err != nil {
		t.Fatalf("gguf-py: %v\n%s", err, out)
	}
	var got struct {
		KV      map[string]any       `json:"kv"`
		Tensors map[string][]float32 `json:"tensors"`
		Types   map[string]string    `json:"types"`
		Q8      map[string]string    `json:"q8_requant_hex"`
		Shapes  map[string][]int64   `json:"shapes"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.KV["general.name"] != "próbka „zażółć”" || got.KV["general.architecture"] != "llama" {
		t.Errorf("gguf-py metadata: %v", got.KV)
	}
	for name, want := range vals {
		ours, _ := Open(bytes.NewReader(data), int64(len(data)))
		mine, err := ours.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		theirs := got.Tensors[name]
		if len(theirs) != len(want) {
			t.Fatalf("%s: gguf-py read %d values, want %d", name, len(theirs), len(want))
		}
		for i := range mine {
			if mine[i] != theirs[i] {
				t.Fatalf("%s[%d]: gguf-py dequantized %v, pltune %v", name, i, theirs[i], mine[i])
			}
		}
	}
	b, _ := EncodeRow(nil, Q8_0, vals["d.q8_0"])
	if hexs := got.Q8["d.q8_0"]; hexs != hexString(b) {
		t.Errorf("gguf-py's Q8_0 quantization differs from pltune's:\n gguf-py %s\n pltune  %s", hexs, hexString(b))
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}
