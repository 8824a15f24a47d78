package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// build returns a safetensors file with the given raw header and data.
func build(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestConvertMatchesPyTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/convert.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Rows [][3]uint32 `json:"f32_f16_bf16_bits"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Rows) < 2000 {
		t.Fatalf("golden has %d rows", len(g.Rows))
	}
	for _, r := range g.Rows {
		f := math.Float32frombits(r[0])
		if got := Float32ToF16(f); uint32(got) != r[1] {
			t.Errorf("Float32ToF16(%g [%#08x]) = %#04x; PyTorch %#04x", f, r[0], got, r[1])
		}
		if got := Float32ToBF16(f); uint32(got) != r[2] {
			t.Errorf("Float32ToBF16(%g [%#08x]) = %#04x; PyTorch %#04x", f, r[0], got, r[2])
		}
	}
}

func TestHalfRoundTripExhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f16 := F16ToFloat32(uint16(h))
		if f16 != f16 {
			if back := Float32ToF16(f16); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("f16 NaN %#04x came back as %#04x", h, back)
			}
		} else if back := Float32ToF16(f16); back != uint16(h) {
			t.Fatalf("f16 %#04x -> %g -> %#04x", h, f16, back)
		}
		bf := BF16ToFloat32(uint16(h))
		if bf == bf {
			if back := Float32ToBF16(bf); back != uint16(h) {
				t.Fatalf("bf16 %#04x -> %g -> %#04x", h, bf, back)
			}
		}
	}
	if got := F16ToFloat32(0x0001); got != float32(math.Ldexp(1, -24)) {
		t.Errorf("smallest f16 subnormal = %g", got)
	}
}

func TestEncodeDecode(t *testing.T) {
	vals := []float32{0, 1, -2.5, 0.1, 1000.125, -1e-3}
	for _, dt := range []DType{BF16, F16, F32, F64} {
		enc, err := EncodeFloat32(nil, dt, vals)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(enc)) != int64(len(vals))*dt.Size() {
			t.Fatalf("%s: %d bytes", dt, len(enc))
		}
		got := make([]float32, len(vals))
		if err := DecodeFloat32(got, dt, enc); err != nil {
			t.Fatal(err)
		}
		tol := map[DType]float64{BF16: 1.0 / 128, F16: 1.0 / 1024}[dt]
		for i := range vals {
			if d := math.Abs(float64(got[i] - vals[i])); d > tol*math.Abs(float64(vals[i])) {
				t.Errorf("%s: %g came back as %g", dt, vals[i], got[i])
			}
		}
	}
	if err := DecodeFloat32(make([]float32, 2), I32, make([]byte, 8)); err == nil {
		t.Error("decoding I32 as float gave no error")
	}
	if err := DecodeFloat32(make([]float32, 3), F32, make([]byte, 8)); err == nil {
		t.Error("length mismatch gave no error")
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	f32 := func(v ...float32) []byte { b, _ := EncodeFloat32(nil, F32, v); return b }
	bf := func(v ...float32) []byte { b, _ := EncodeFloat32(nil, BF16, v); return b }
	srcs := []struct {
		t    Tensor
		data []byte
	}{
		{Tensor{"model.embed_tokens.weight", BF16, []int64{2, 3}}, bf(1, 2, 3, 4, 5, 6)},
		{Tensor{"scalar", F32, nil}, f32(7)},
		{Tensor{"empty", F32, []int64{0, 4}}, nil},
		{Tensor{"norm", F32, []int64{3}}, f32(0.5, -1, 2)},
		{Tensor{"ids", I64, []int64{2}}, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 3), 9)},
	}
	var list []Tensor
	for _, s := range srcs {
		list = append(list, s.t)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, list, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if err := w.WriteTensor(s.t.Name, s.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	hdrLen := binary.LittleEndian.Uint64(buf.Bytes())
	if hdrLen%8 != 0 {
		t.Errorf("header length %d is not 8-byte aligned", hdrLen)
	}
	f, err := Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	if got, want := f.Names(), []string{"model.embed_tokens.weight", "scalar", "empty", "norm", "ids"}; !slices.Equal(got, want) {
		t.Errorf("Names = %v; want %v", got, want)
	}
	for _, s := range srcs {
		info, ok := f.Info(s.t.Name)
		if !ok || info.DType != s.t.DType || !slices.Equal(info.Shape, append([]int64{}, s.t.Shape...)) {
			t.Errorf("Info(%q) = %+v", s.t.Name, info)
		}
		raw, err := f.ReadRaw(s.t.Name, nil)
		if err != nil || !bytes.Equal(raw, s.data) {
			t.Errorf("ReadRaw(%q) = %v, %v; want %v", s.t.Name, raw, err, s.data)
		}
	}
	got, err := f.ReadFloat32("model.embed_tokens.weight")
	if err != nil || !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("ReadFloat32 = %v, %v", got, err)
	}
	if _, err := f.ReadRaw("nope", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
	// Element ranges: every [a, a+n) of the bf16 matrix and the int64s is
	// the matching slice of the whole tensor's bytes.
	for _, s := range []int{0, 4} {
		whole, es := srcs[s].data, int(srcs[s].t.DType.Size())
		for a := 0; a*es <= len(whole); a++ {
			for n := 0; (a+n)*es <= len(whole); n++ {
				got, err := f.ReadRange(srcs[s].t.Name, int64(a), int64(n), nil)
				if err != nil || !bytes.Equal(got, whole[a*es:(a+n)*es]) {
					t.Errorf("ReadRange(%s, %d, %d) = %v, %v; want %v", srcs[s].t.Name, a, n, got, err, whole[a*es:(a+n)*es])
				}
			}
		}
	}
	for _, r := range [][2]int64{{-1, 1}, {5, 2}, {0, 7}, {2, -1}} {
		if _, err := f.ReadRange("model.embed_tokens.weight", r[0], r[1], nil); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("ReadRange(%d, %d) of 6 elements: %v, want an error saying outside", r[0], r[1], err)
		}
	}
}

func TestWriterMisuse(t *testing.T) {
	list := []Tensor{{"a", F32, []int64{2}}, {"b", F32, []int64{1}}}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, list, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("b", make([]byte, 4)); err == nil {
		t.Error("out-of-order tensor accepted")
	}
	if err := w.WriteTensor("a", make([]byte, 4)); err == nil {
		t.Error("short tensor accepted")
	}
	if err := w.WriteTensor("a", make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("Close with a missing tensor: %v", err)
	}
	for _, bad := range [][]Tensor{
		{{"a", "F17", []int64{1}}},
		{{"a", F32, []int64{1}}, {"a", F32, []int64{1}}},
		{{"a", F32, []int64{-1}}},
		{{"__metadata__", F32, []int64{1}}},
	} {
		if _, err := NewWriter(&bytes.Buffer{}, bad, nil); err == nil {
			t.Errorf("NewWriter(%v) gave no error", bad)
		}
	}
}

func TestHostileHeaders(t *testing.T) {
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	past := make([]byte, 8+10)
	binary.LittleEndian.PutUint64(past, 100)
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"short file", []byte{1, 2, 3}, "8-byte header length"},
		{"huge header length", huge, "exceeds"},
		{"header past end", past, "runs past the end"},
		{"not an object", build(`[1,2]`, nil), "not a JSON object"},
		{"bad json", build(`{"a":`, nil), "header"},
		{"unknown dtype", build(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `unknown dtype "Q4"`},
		{"offsets past data", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "run past"},
		{"offsets reversed", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, make([]byte, 4)), "end before"},
		{"shape mismatch", build(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 16)), "needs 12 bytes"},
		{"shape overflow", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}`, make([]byte, 8)), "larger than"},
		{"negative dim", build(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, make([]byte, 8)), "negative"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "overlap"},
		{"gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), "gap"},
		{"not covering", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 12)), "cover 4 of the 12"},
		{"duplicate", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "twice"},
		{"offsets count", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, make([]byte, 4)), "data_offsets has 1"},
		{"metadata not strings", build(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
		{"trailing data", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x`, make([]byte, 4)), "after the JSON"},
		{"empty name", build(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "empty tensor name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(tt.file), int64(len(tt.file)), "bad.safetensors")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "bad.safetensors") {
				t.Errorf("error %q; want it to name the file and contain %q", err, tt.want)
			}
		})
	}
}

func source(name string, dt DType, shape []int64, fill byte) Source {
	t := Tensor{name, dt, shape}
	return Source{Tensor: t, Data: func() ([]byte, error) { return bytes.Repeat([]byte{fill}, int(t.Bytes())), nil }}
}

func TestWriteSharded(t *testing.T) {
	srcs := []Source{
		source("a", F32, []int64{4}, 1),   // 16
		source("b", F32, []int64{2}, 2),   // 8
		source("c", BF16, []int64{20}, 3), // 40: larger than a shard
		source("d", F16, []int64{3}, 4),   // 6
	}
	tests := []struct {
		max       int64
		wantFiles []string
		wantShard map[string]string
	}{
		{0, []string{SingleFile}, nil},
		{1000, []string{SingleFile}, nil},
		{24, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", IndexFile},
			map[string]string{"a": "model-00001-of-00003.safetensors", "b": "model-00001-of-00003.safetensors", "c": "model-00002-of-00003.safetensors", "d": "model-00003-of-00003.safetensors"}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		// A stale file of the other layout must disappear.
		os.WriteFile(filepath.Join(dir, IndexFile), []byte("{}"), 0o644)
		os.WriteFile(filepath.Join(dir, SingleFile), []byte("x"), 0o644)
		files, err := WriteSharded(dir, srcs, tt.max, map[string]string{"format": "pt"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(files, tt.wantFiles) {
			t.Errorf("max %d: files %v; want %v", tt.max, files, tt.wantFiles)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != len(tt.wantFiles) {
			t.Errorf("max %d: folder holds %d entries; want %d", tt.max, len(entries), len(tt.wantFiles))
		}
		set, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(set.Names(), []string{"a", "b", "c", "d"}) {
			t.Errorf("names %v", set.Names())
		}
		for i, s := range srcs {
			raw, err := set.ReadRaw(s.Name, nil)
			if err != nil || !bytes.Equal(raw, bytes.Repeat([]byte{byte(i + 1)}, int(s.Bytes()))) {
				t.Errorf("max %d: %s = %v, %v", tt.max, s.Name, raw, err)
			}
			if tt.wantShard != nil {
				f, _ := set.File(s.Name)
				if filepath.Base(f.Name()) != tt.wantShard[s.Name] {
					t.Errorf("%s in %s; want %s", s.Name, f.Name(), tt.wantShard[s.Name])
				}
			}
		}
		if tt.wantShard != nil {
			var idx Index
			raw, _ := os.ReadFile(filepath.Join(dir, IndexFile))
			json.Unmarshal(raw, &idx)
			if idx.Metadata["total_size"] != float64(70) {
				t.Errorf("total_size = %v", idx.Metadata["total_size"])
			}
		}
		set.Close()
	}
}

func TestOpenDirBadIndex(t *testing.T) {
	tests := []struct {
		name  string
		index string
		want  string
	}{
		{"escape", `{"weight_map":{"a":"../x.safetensors"}}`, "not a file name"},
		{"wrong shard", `{"weight_map":{"a":"s2.safetensors","b":"s2.safetensors","c":"s1.safetensors"}}`, `"a" is in s1.safetensors, not s2.safetensors`},
		{"unlisted", `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}`, `"c" is missing from the index`},
		{"missing tensor", `{"weight_map":{"a":"s1.safetensors","c":"s1.safetensors","b":"s2.safetensors","z":"s2.safetensors"}}`, `"z" is not in s2`},
		{"empty", `{"weight_map":{}}`, "empty"},
		{"bad json", `{"weight_map":`, "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteFile(filepath.Join(dir, "s1.safetensors"), []Source{source("a", F32, []int64{1}, 1), source("c", F32, []int64{1}, 1)}, nil); err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(filepath.Join(dir, "s2.safetensors"), []Source{source("b", F32, []int64{1}, 1)}, nil); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(tt.index), 0o644)
			_, err := OpenDir(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v; want %q", err, tt.want)
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(build(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,1],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[],"data_offsets":[4,6]}}`, make([]byte, 6)))
	f.Add(build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Open(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			return
		}
		for _, n := range file.Names() {
			info, _ := file.Info(n)
			raw, err := file.ReadRaw(n, nil)
			if err != nil {
				t.Fatalf("validated tensor %q unreadable: %v", n, err)
			}
			if int64(len(raw)) != info.Bytes() {
				t.Fatalf("tensor %q: %d bytes; info says %d", n, len(raw), info.Bytes())
			}
			// The second half of its elements, as a byte range.
			if ne := info.NumElements(); ne > 0 && info.DType.Size() > 0 {
				part, err := file.ReadRange(n, ne/2, ne-ne/2, nil)
				if err != nil || !bytes.Equal(part, raw[ne/2*info.DType.Size():]) {
					t.Fatalf("ReadRange(%q) of its second half: %v", n, err)
				}
			}
			if info.DType == F32 || info.DType == BF16 || info.DType == F16 || info.DType == F64 {
				if _, err := file.ReadFloat32(n); err != nil {
					t.Fatalf("ReadFloat32(%q): %v", n, err)
				}
			}
		}
	})
}
