package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Writer streams one safetensors file: the header is written up front from
// the tensor list, then each tensor's bytes in that order, so no more than
// one tensor needs to be in memory.
type Writer struct {
	w       io.Writer
	tensors []Tensor
	next    int
}

// NewWriter writes the header for tensors (data in the given order) and
// metadata (may be nil) to w.
func NewWriter(w io.Writer, tensors []Tensor, metadata map[string]string) (*Writer, error) {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header[metaKey] = metadata
	}
	var off int64
	for _, t := range tensors {
		if t.DType.Size() == 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		if t.Name == "" || t.Name == metaKey {
			return nil, fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return nil, fmt.Errorf("safetensors: tensor %q listed twice", t.Name)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		n := t.Bytes()
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": shape, "data_offsets": [2]int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors: encoding header: %w", err)
	}
	// Pad with spaces so the data buffer starts 8-byte aligned, as the
	// reference writer does; readers may then map it in place.
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, strings.Repeat(" ", pad)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(js); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return &Writer{w: w, tensors: tensors}, nil
}

// WriteTensor writes the data of the next tensor, which must be name and
// hold exactly its size in bytes (little-endian elements).
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.next >= len(w.tensors) {
		return fmt.Errorf("safetensors: tensor %q: all %d tensors already written", name, len(w.tensors))
	}
	t := w.tensors[w.next]
	if t.Name != name {
		return fmt.Errorf("safetensors: tensor %q written where %q comes next", name, t.Name)
	}
	if int64(len(data)) != t.Bytes() {
		return fmt.Errorf("safetensors: tensor %q: %d bytes given; shape %v of %s needs %d", name, len(data), t.Shape, t.DType, t.Bytes())
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("safetensors: tensor %q: %w", name, err)
	}
	w.next++
	return nil
}

// Close checks that every tensor was written. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.next != len(w.tensors) {
		return fmt.Errorf("safetensors: %d of %d tensors written; next is %q", w.next, len(w.tensors), w.tensors[w.next].Name)
	}
	return nil
}

// Source is a tensor to write whose data is fetched only when its turn
// comes (for example copied from a device).
type Source struct {
	Tensor
	Data func() ([]byte, error)
}

// WriteFile writes tensors, in order, to the safetensors file at path. The
// file appears only complete: it is written under a temporary name first.
func WriteFile(path string, tensors []Source, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	list := make([]Tensor, len(tensors))
	for i, s := range tensors {
		list[i] = s.Tensor
	}
	w, err := NewWriter(bw, list, metadata)
	if err != nil {
		return err
	}
	for _, s := range tensors {
		data, err := s.Data()
		if err != nil {
			return fmt.Errorf("safetensors: %s: tensor %q: %w", path, s.Name, err)
		}
		if err := w.WriteTensor(s.Name, data); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// WriteSharded writes a checkpoint into dir in the Hugging Face layout:
// model.safetensors when everything fits in maxShardBytes (or maxShardBytes
// is 0 or less), otherwise model-0000X-of-0000N.safetensors files, each
// filled in order up to maxShardBytes (a larger tensor gets a shard of its
// own), and model.safetensors.index.json. It returns the files written.
// A stale index or single file from an earlier save is removed so the
// folder holds one layout only.
func WriteSharded(dir string, tensors []Source, maxShardBytes int64, metadata map[string]string) ([]string, error) {
	var total int64
	for _, t := range tensors {
		total += t.Bytes()
	}
	if maxShardBytes <= 0 || total <= maxShardBytes {
		path := filepath.Join(dir, SingleFile)
		if err := WriteFile(path, tensors, metadata); err != nil {
			return nil, err
		}
		if err := os.Remove(filepath.Join(dir, IndexFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
		return []string{SingleFile}, nil
	}
	var groups [][]Source
	var size int64
	for _, t := range tensors {
		if len(groups) == 0 || size > 0 && size+t.Bytes() > maxShardBytes {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += t.Bytes()
	}
	idx := Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	var files []string
	for i, g := range groups {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		if err := WriteFile(filepath.Join(dir, name), g, metadata); err != nil {
			return nil, err
		}
		for _, t := range g {
			idx.WeightMap[t.Name] = name
		}
		files = append(files, name)
	}
	js, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, SingleFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return append(files, IndexFile), nil
}
