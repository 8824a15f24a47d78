package corpus

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func FuzzFastOpenAI(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"Cześć \"x\" \u0105\n\ud83d\ude00 \ud800"},{"role":"assistant","content":"Tak."}]}`,
		`{"id": 12, "origin":"organic","type":"qa","subtype":"","sources":["a","b\/c"],"language":"pl","messages":[]}`,
		`{"messages":[{"content":"a","role":"user"}], "messages": [{}]}`, ` {} `, `{"Messages":[]}`, `{"messages":null}`,
		`{"meta":{"a":1},"messages":[]}`, `{"id":null,"messages":[]}`, `{"messages":[{"role":"user","content":"a","name":"x"}]}`,
		`{"messages":[{"role":"user","content":"a"}]} x`, `{"messages":[{"role":"user","content":"a"},]}`, `{"id":{"a":[1,2]},"messages":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastOpenAI(b)
		if !ok {
			return
		}
		if !utf8.Valid(b) {
			t.Fatalf("fastOpenAI accepted %q, which is not UTF-8", b)
		}
		var want openAIRecord
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fastOpenAI accepted %q, encoding/json says %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast %+v\njson %+v", b, got, want)
		}
	})
}

func BenchmarkDecodeOpenAI(b *testing.B) {
	rec := []byte(`{"messages":[{"role":"system","content":"Jesteś pomocnym asystentem."},{"role":"user","content":"Jaka jest najdłuższa rzeka w Polsce? Odpowiedz krótko, podając długość.\n\nProszę o „konkretną” odpowiedź."},{"role":"assistant","content":"Najdłuższą rzeką w Polsce jest Wisła, która ma około 1047 km długości. Płynie przez Kraków, Warszawę i Toruń, a uchodzi do Morza Bałtyckiego w Zatoce Gdańskiej.\nJej dorzecze obejmuje większą część kraju."}]}`)
	b.SetBytes(int64(len(rec)))
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			decodeOpenAI(rec, "x", OriginOrganic)
		}
	})
	b.Run("general", func(b *testing.B) {
		for b.Loop() {
			var r openAIRecord
			unmarshal(rec, &r)
		}
	})
}
