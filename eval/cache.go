package eval

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Record is one model answer kept in the results cache: the raw output for
// one item in one mode. Scores are recomputed from records, so a change in
// normalisation or detection never needs the model again.
type Record struct {
	Key   string `json:"key"`
	Task  string `json:"task"`
	Item  string `json:"item"`
	Model string `json:"model"`
	Mode  string `json:"mode"` // "generate" or "loglikelihood"
	// Generation holds a generated answer.
	Generation *Generation `json:"generation,omitempty"`
	// Loglikelihoods holds one result per answer of a multiple-choice item.
	Loglikelihoods []LoglikelihoodResult `json:"loglikelihoods,omitempty"`
}

// recordKey hashes everything that decides a model's output for an item:
// task, item id and content, model, mode and the generation settings.
func recordKey(parts ...any) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range parts {
		if err := enc.Encode(p); err != nil {
			panic(fmt.Sprintf("eval: cache key part %T: %v", p, err))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Fingerprinter is a Model that can say which weights it answers with.
// The results cache keys answers by Name and Fingerprint, so a model
// retrained into the same folder (every run's is named final) is asked
// again rather than answered from the older model's records.
type Fingerprinter interface {
	Fingerprint() string
}

// cacheID is what the results cache knows a model by.
func cacheID(m Model) string {
	if f, ok := m.(Fingerprinter); ok {
		if fp := f.Fingerprint(); fp != "" {
			return m.Name() + "@" + fp
		}
	}
	return m.Name()
}

// fingerprintSample is how many bytes of each end of a weight file the
// fingerprint reads.
const fingerprintSample = 64 << 10

// FingerprintDirs identifies the model held in Hugging Face folders (a
// model folder, an adapter folder, a tokenizer folder) without reading
// its weights whole: the JSON files (config.json, generation_config.json,
// adapter_config.json, the index, tokenizer.json, tokenizer_config.json,
// …) are hashed whole; each .safetensors file by name, size, modification
// time, its header (names, dtypes, shapes, offsets) and the first and last
// 64 KiB of its data. Retraining rewrites the weights (new modification
// time, new bytes at both ends), so it changes the fingerprint even at
// the same shapes; a copy that does not keep modification times gets a
// new fingerprint and is evaluated again, which is safe. Folders may be
// repeated or empty strings, which are skipped.
func FingerprintDirs(dirs ...string) (string, error) {
	h := sha256.New()
	seen := map[string]bool{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("eval: fingerprint: %w", err)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		ents, err := os.ReadDir(dir)
		if err != nil {
			return "", fmt.Errorf("eval: fingerprint: %w", err)
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		n := 0
		for _, name := range names {
			path := filepath.Join(dir, name)
			var err error
			switch {
			case strings.HasSuffix(name, ".safetensors"):
				err = fingerprintWeights(h, path)
			case strings.HasSuffix(name, ".json") || name == "tokenizer.model" || strings.HasSuffix(name, ".jinja"):
				err = fingerprintWhole(h, path)
			default:
				continue
			}
			if err != nil {
				return "", fmt.Errorf("eval: fingerprint: %w", err)
			}
			n++
		}
		if n == 0 {
			return "", fmt.Errorf("eval: fingerprint: %s holds no model, adapter or tokenizer files", dir)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

func fingerprintWhole(h io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s %d\n", filepath.Base(path), len(data))
	h.Write(data)
	return nil
}

func fingerprintWeights(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	fmt.Fprintf(h, "%s %d %d\n", filepath.Base(path), size, st.ModTime().UnixNano())
	var n [8]byte
	if _, err := f.ReadAt(n[:], 0); err != nil {
		return fmt.Errorf("%s: not a safetensors file: %w", path, err)
	}
	hdr := binary.LittleEndian.Uint64(n[:])
	if hdr > uint64(size-8) || hdr > 100<<20 {
		return fmt.Errorf("%s: not a safetensors file (header of %d bytes in a file of %d)", path, hdr, size)
	}
	data := int64(8 + hdr)
	last := max(data, size-fingerprintSample)
	// Offset and length: the header, the first and the last bytes of data.
	for _, r := range [][2]int64{{0, data}, {data, min(fingerprintSample, size-data)}, {last, size - last}} {
		if _, err := io.Copy(h, io.NewSectionReader(f, r[0], r[1])); err != nil {
			return err
		}
	}
	return nil
}

type cache struct {
	mu      sync.Mutex
	f       *os.File
	records map[string]Record
}

// openCache loads path (creating it when missing). A torn last line, left by
// an interrupted write, is cut off so that appends start on a fresh line.
func openCache(path string) (*cache, error) {
	c := &cache{records: map[string]Record{}}
	if path == "" {
		return c, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eval: results cache: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eval: results cache %s: %w", path, err)
	}
	good := 0
	line := 0
	for rest := data; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // torn: no newline yet
		}
		line++
		var r Record
		if err := json.Unmarshal(rest[:i], &r); err != nil {
			f.Close()
			return nil, fmt.Errorf("eval: results cache %s: line %d: %v; delete the file to start over", path, line, err)
		}
		if r.Key != "" {
			c.records[r.Key] = r
		}
		good += i + 1
		rest = rest[i+1:]
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("eval: results cache %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("eval: results cache %s: %w", path, err)
	}
	c.f = f
	return c, nil
}

func (c *cache) get(key string) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.records[key]
	return r, ok
}

// put stores records and appends them to the file in one write each, so a
// crash loses at most the line being written.
func (c *cache) put(rs ...Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rs {
		c.records[r.Key] = r
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("eval: results cache: %w", err)
		}
	}
	if c.f == nil {
		return nil
	}
	w.Flush()
	if _, err := c.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("eval: results cache: %w", err)
	}
	return nil
}

func (c *cache) close() error {
	if c.f == nil {
		return nil
	}
	return c.f.Close()
}
