package corpus_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pltune/pltune/corpus"
)

// Read PLLuMIC's released JSON, which does not record origins: the caller
// names the origin of the whole file.
func ExampleReadSamples() {
	ctx := context.Background()
	for s, err := range corpus.ReadSamples(ctx, "testdata/pllumic.json", corpus.Options{Origin: corpus.OriginOrganic}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %s %s: %d turns\n", s.ID, s.Origin, s.Type, len(s.Messages))
	}
	// Output:
	// 1 organic Generation: 2 turns
	// 2 organic Dialog: 4 turns
	// 3 organic Extraction: 2 turns
	// 4 organic Knowledge (QA): 4 turns
}

// Read leniently: rejected records go to the quarantine, and the accounting
// says what happened to every record.
func ExampleReader_Samples() {
	ctx := context.Background()
	var quarantine strings.Builder
	r, err := corpus.Open("testdata/invalid.jsonl", corpus.Options{Policy: corpus.Lenient, Quarantine: &quarantine})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for s, err := range r.Samples(ctx) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("accepted", s.ID)
	}
	a := r.Accounting()
	fmt.Printf("read %d = accepted %d + rejected %d\n", a.Read, a.Accepted, a.Rejected)
	fmt.Print(strings.SplitAfter(quarantine.String(), "\n")[1])
	// Output:
	// accepted invalid.jsonl:1
	// accepted 9
	// read 9 = accepted 2 + rejected 7
	// {"file":"invalid.jsonl","line":3,"reason":"message 2: unknown role \"asistant\"; want system, user or assistant","record":"{\"messages\": [{\"role\": \"user\", \"content\": \"Kto napisał „Pana Tadeusza”?\"}, {\"role\": \"asistant\", \"content\": \"Adam Mickiewicz.\"}]}"}
}

// In strict mode (the default) the first rejected record ends the read with
// an error that names the file, line and message.
func ExampleRecordError() {
	for _, err := range corpus.ReadSamples(context.Background(), "testdata/invalid.jsonl", corpus.Options{}) {
		if err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// corpus: invalid.jsonl: line 2: malformed JSON: unexpected end of JSON input
}

func ExampleNewWriter() {
	w, err := corpus.NewWriter(os.Stdout, corpus.ShareGPT)
	if err != nil {
		fmt.Println(err)
		return
	}
	w.WriteSample(&corpus.Sample{ID: "s1", Origin: corpus.OriginSynthetic, Messages: []corpus.Message{
		{Role: corpus.RoleUser, Content: "Jak się masz?"}, {Role: corpus.RoleAssistant, Content: "Dobrze, dziękuję!"}}})
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"conversations":[{"from":"human","value":"Jak się masz?"},{"from":"gpt","value":"Dobrze, dziękuję!"}],"id":"s1","origin":"synthetic"}
}

func ExampleDedup() {
	qa := func(id, q, a string) corpus.Sample {
		return corpus.Sample{ID: id, Messages: []corpus.Message{{Role: corpus.RoleUser, Content: q}, {Role: corpus.RoleAssistant, Content: a}}}
	}
	answer := "Mikołaj Kopernik urodził się w Toruniu w 1473 roku, studiował w Krakowie, Bolonii i Padwie, a jego dzieło o obrotach sfer niebieskich ukazało się w Norymberdze w 1543 roku."
	samples := []corpus.Sample{
		qa("a", "Kim był Kopernik?", answer),
		qa("b", "Kim był  KOPERNIK?", answer),
		qa("c", "Kim był Kopernik?", strings.Replace(answer, "1543 roku.", "1543 r.", 1)),
		qa("d", "Kim była Skłodowska?", "Fizyczką i chemiczką, dwukrotną noblistką."),
	}
	seq := func(yield func(corpus.Sample, error) bool) {
		for _, s := range samples {
			if !yield(s, nil) {
				return
			}
		}
	}
	res, err := corpus.Dedup(context.Background(), seq, corpus.DefaultDedupOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("keep:", res.Keep)
	for _, c := range res.Clusters {
		for _, d := range c.Duplicates {
			fmt.Printf("%s duplicates %s (exact %v)\n", d.ID, c.Kept, d.Exact)
		}
	}
	// Output:
	// keep: [true false false true]
	// b duplicates a (exact true)
	// c duplicates a (exact false)
}

func ExampleStats_WriteMarkdown() {
	ctx := context.Background()
	st, err := corpus.ComputeStats(ctx, corpus.ReadSamples(ctx, "testdata/pllumic.json", corpus.Options{Origin: corpus.OriginOrganic}), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var md strings.Builder
	st.WriteMarkdown(&md)
	fmt.Print(strings.Join(strings.Split(md.String(), "\n")[:5], "\n"))
	// Output:
	// | Origin | Samples | % |
	// |---|---:|---:|
	// | organic | 4 | 100.00 |
	// | **Total** | **4** | **100.00** |
}

func ExampleMix() {
	var all []corpus.Sample
	add := func(origin corpus.Origin, source string, n int) {
		for i := range n {
			all = append(all, corpus.Sample{ID: fmt.Sprint(source, i), Origin: origin, Sources: []string{source}})
		}
	}
	add(corpus.OriginOrganic, "ankieta", 600)
	add(corpus.OriginConverted, "polemo", 3000) // capped at 1,000
	add(corpus.OriginConverted, "nkjp-ner", 800)
	opts := corpus.DefaultMixOptions()
	opts.Proportions = map[corpus.Origin]float64{corpus.OriginOrganic: 0.5, corpus.OriginConverted: 0.5}
	mix, rep, err := corpus.Mix(all, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(mix), "taken,", rep.Dropped, "dropped")
	for _, l := range rep.BySource {
		fmt.Printf("%s: available %d, capped %d, taken %d\n", l.Key, l.Available, l.Capped, l.Taken)
	}
	// Output:
	// 1200 taken, 3200 dropped
	// converted/nkjp-ner: available 800, capped 0, taken 272
	// converted/polemo: available 3000, capped 2000, taken 328
	// organic/ankieta: available 600, capped 0, taken 600
}

func ExampleSplit() {
	var all []corpus.Sample
	for i := range 40 {
		all = append(all, corpus.Sample{ID: fmt.Sprint(i), Origin: corpus.OriginOrganic, Type: []string{"QA", "Dialog"}[i%2]})
	}
	train, valid, err := corpus.Split(all, corpus.SplitOptions{Validation: 0.1, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	types := map[string]int{}
	for _, s := range valid {
		types[s.Type]++
	}
	fmt.Println(len(train), len(valid), types)
	// Output:
	// 36 4 map[Dialog:2 QA:2]
}
