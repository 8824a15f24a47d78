package corpus

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"Cześć \"x\" \u0105\n"}]}`, `[1, -0.5e+3, true, false, null, {}]`,
		` "a" `, `{"a":}`, `[1,]`, `01`, `-`, `1.`, `1e`, `"\x"`, `"\u12"`, "\"\x01\"", `{"a" 1}`, `{} {}`, ``, `  `,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001), "\"\xff\"", `nul`, `{"a":1,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	rec := []byte(`{"messages":[{"role":"system","content":"Jesteś pomocnym asystentem."},{"role":"user","content":"Jaka jest najdłuższa rzeka w Polsce? Odpowiedz krótko, podając długość."},{"role":"assistant","content":"Najdłuższą rzeką w Polsce jest Wisła, która ma około 1047 km długości. Płynie przez Kraków, Warszawę i Toruń, a uchodzi do Morza Bałtyckiego w Zatoce Gdańskiej."}]}`)
	b.SetBytes(int64(len(rec)))
	b.Run("pltune", func(b *testing.B) {
		for b.Loop() {
			validJSON(rec)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			json.Valid(rec)
		}
	})
}
