package buildchain

import (
	"strings"
	"testing"
)

// A shortened copy of gotch v0.9.1's generated code: a method with a scalar
// argument, a function with a tensor list, and one with no handles.
const generatedSample = `package ts

import(
  "unsafe"
  "fmt"
)

func(ts *Tensor) MaskedFill(mask *Tensor, value *Scalar, del bool)(retVal *Tensor, err error) { 
  if del { defer ts.MustDrop() }
  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
  
  lib.AtgMaskedFill(ptr, ts.ctensor, mask.ctensor, value.cscalar)
  if err = TorchErr(); err != nil {
    return retVal, err
  }
  return newTensor(*ptr), err
} 

func Stack(tensors []*Tensor, dim int64)(retVal *Tensor, err error) { 
  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
  var ctensors []lib.Ctensor
  for _, t := range tensors {ctensors = append(ctensors, t.ctensor)}
  lib.Atg_Stack(ptr, ctensors, len(ctensors), dim)
  return newTensor(*ptr), err
} 

func Ones(size []int64, optionsKind gotch.DType, optionsDevice gotch.Device)(retVal *Tensor, err error) { 
  ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))
  lib.AtgOnes(ptr, size, len(size), optionsKind.CInt(), optionsDevice.CInt())
  return newTensor(*ptr), err
} 
`

func TestKeepArgsAlive(t *testing.T) {
	out, n := KeepArgsAlive([]byte(generatedSample))
	if n != 2 {
		t.Fatalf("patched %d functions, want 2", n)
	}
	got := string(out)
	for _, want := range []string{
		"import(\n  \"runtime\"\n  \"unsafe\"\n",
		"value.cscalar)\n  runtime.KeepAlive(ts)\n  runtime.KeepAlive(mask)\n  runtime.KeepAlive(value)\n  if err",
		"dim)\n  runtime.KeepAlive(tensors)\n  return",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("patched source lacks %q:\n%s", want, got)
		}
	}
	ones := got[strings.Index(got, "func Ones"):]
	if strings.Contains(ones, "KeepAlive") {
		t.Errorf("a function without handle arguments was patched:\n%s", ones)
	}
	if _, n := KeepArgsAlive([]byte("package ts\n")); n != 0 {
		t.Errorf("patched %d functions in a file without gotch's imports", n)
	}
}
