package buildchain

import (
	"bytes"
	"regexp"
	"strings"
)

// gotch frees a *Tensor's and a *Scalar's C handle from a Go finalizer, and
// its generated functions pass libtorch only the handle (ts.ctensor,
// other.cscalar). Once the handle is read, nothing keeps the Go value
// reachable, so the garbage collector may run the finalizer while libtorch
// is still using the handle: a temporary scalar passed to masked_fill was
// seen freed inside Scalar::toFloat at 16,384 tokens. The fix is Go's own
// idiom for this, runtime.KeepAlive on every handle-owning argument after
// the call.

// generatedFunc matches a generated function's signature: optional receiver,
// name, parameter list.
var generatedFunc = regexp.MustCompile(`(?m)^func(\(ts \*Tensor\))? *[A-Za-z0-9_]+\(([^)]*)\)`)

// libCall is the one call into libtch that each generated function makes.
var libCall = regexp.MustCompile(`(?m)^[ \t]*lib\.Atg[A-Za-z0-9_]*\(.*\)[ \t]*$`)

// KeepArgsAlive makes every generated function keep its tensor and scalar
// arguments (and its receiver) reachable until libtorch has returned. It
// returns the patched source and how many functions it changed.
func KeepArgsAlive(src []byte) ([]byte, int) {
	if !bytes.Contains(src, []byte("\n  \"unsafe\"\n")) {
		return src, 0
	}
	funcs := generatedFunc.FindAllSubmatchIndex(src, -1)
	var out bytes.Buffer
	last, n := 0, 0
	for i, f := range funcs {
		end := len(src)
		if i+1 < len(funcs) {
			end = funcs[i+1][0]
		}
		var keep []string
		if f[2] >= 0 {
			keep = append(keep, "ts")
		}
		for _, p := range strings.Split(string(src[f[4]:f[5]]), ",") {
			fields := strings.Fields(p)
			if len(fields) != 2 {
				continue
			}
			switch fields[1] {
			case "*Tensor", "*Scalar", "[]*Tensor":
				keep = append(keep, fields[0])
			}
		}
		if len(keep) == 0 {
			continue
		}
		call := libCall.FindIndex(src[f[1]:end])
		if call == nil {
			continue
		}
		at := f[1] + call[1]
		out.Write(src[last:at])
		for _, k := range keep {
			out.WriteString("\n  runtime.KeepAlive(" + k + ")")
		}
		last = at
		n++
	}
	out.Write(src[last:])
	if n == 0 {
		return src, 0
	}
	return bytes.Replace(out.Bytes(), []byte("\n  \"unsafe\"\n"), []byte("\n  \"runtime\"\n  \"unsafe\"\n"), 1), n
}
