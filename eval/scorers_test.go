package eval

import (
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   string
		fold bool
		want string
	}{
		{"Warszawa", false, "warszawa"},
		{"  Odpowiedź: Warszawa.  ", false, "warszawa"},
		{"Odpowiedz: „Pan Tadeusz”", false, "pan tadeusz"},
		{"**Odpowiedź:** Kraków", false, "kraków"},
		{"Poprawna odpowiedź to: Wisła!", false, "wisła"},
		{"Odpowiedź brzmi: Wisła", false, "wisła"},
		{"Answer: \"Chopin\"", false, "chopin"},
		{"The answer is Chopin", false, "chopin"},
		{"Odp.: Mickiewicz", false, "mickiewicz"},
		{"Odpowiedź: Answer: Reymont", false, "reymont"},
		{"»Lalka« Prusa", false, "lalka prusa"},
		{"Bielsko-Biała", false, "bielsko biała"},
		{"Łódź, Gdańsk", true, "lodz gdansk"},
		{"ŻÓŁĆ", true, "zolc"},
		{"ŻÓŁĆ", false, "żółć"},
		// Words that start like a prefix are kept whole.
		{"Odpowiedzialność zbiorowa", false, "odpowiedzialność zbiorowa"},
		{"Answerable", false, "answerable"},
		// A bare lead-in is an answer too.
		{"Odpowiedź", false, "odpowiedź"},
		{"tab\tand\nnewline", false, "tab and newline"},
		{"", false, ""},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in, NormalizeOptions{FoldDiacritics: tt.fold}); got != tt.want {
			t.Errorf("Normalize(%q, fold=%v) = %q; want %q", tt.in, tt.fold, got, tt.want)
		}
	}
}

func TestMatchOpenQA(t *testing.T) {
	it := &OpenQAItem{ID: "q", Question: "?", Answers: []string{"Władysław Reymont", "Reymont"}, Regex: []string{`(?i)\bchłop`}}
	tests := []struct {
		resp  string
		opt   OpenQAOptions
		want  bool
		match string
	}{
		{"Reymont", OpenQAOptions{}, true, "Reymont"},
		{"Odpowiedź: Władysław Reymont.", OpenQAOptions{}, true, "Władysław Reymont"},
		{"Nagrodę otrzymał Władysław Reymont za „Chłopów”.", OpenQAOptions{}, true, "Władysław Reymont"},
		{"Nagrodę otrzymał Reymont.", OpenQAOptions{Match: MatchExact}, false, ""},
		{"reymont", OpenQAOptions{Match: MatchExact}, true, "Reymont"},
		{"Wladyslaw Reymont", OpenQAOptions{}, true, "Reymont"},
		{"Wladyslaw Reymont", OpenQAOptions{Match: MatchExact}, false, ""},
		{"Wladyslaw Reymont", OpenQAOptions{Match: MatchExact, Normalize: NormalizeOptions{FoldDiacritics: true}}, true, "Władysław Reymont"},
		// Whole words only: "Reymontowski" is not "Reymont".
		{"styl reymontowski", OpenQAOptions{}, false, ""},
		{"Chłopi", OpenQAOptions{}, true, `re:(?i)\bchłop`},
		{"Sienkiewicz", OpenQAOptions{}, false, ""},
		{"", OpenQAOptions{}, false, ""},
	}
	for _, tt := range tests {
		ok, m := MatchOpenQA(it, tt.resp, tt.opt)
		if ok != tt.want || m != tt.match {
			t.Errorf("MatchOpenQA(%q, %+v) = %v, %q; want %v, %q", tt.resp, tt.opt, ok, m, tt.want, tt.match)
		}
	}
}

func TestArgmaxChoice(t *testing.T) {
	tests := []struct {
		name        string
		lps         []float64
		answers     []string
		acc, accNrm int
	}{
		{"same length", []float64{-3, -1, -2}, []string{"abc", "def", "ghi"}, 1, 1},
		// The long answer has the lower total but the higher per-character score.
		{"length normalised", []float64{-2, -6}, []string{"ab", "abcdefghijkl"}, 0, 1},
		// Characters, not bytes: "żółć" is 4 characters (8 bytes).
		{"characters not bytes", []float64{-4.4, -4}, []string{"żółć", "abcd"}, 1, 1},
		{"tie goes low", []float64{-1, -1}, []string{"a", "b"}, 0, 0},
	}
	for _, tt := range tests {
		acc, accNorm := ArgmaxChoice(tt.lps, tt.answers)
		if acc != tt.acc || accNorm != tt.accNrm {
			t.Errorf("%s: ArgmaxChoice = %d, %d; want %d, %d", tt.name, acc, accNorm, tt.acc, tt.accNrm)
		}
	}
}

func TestExtractChoice(t *testing.T) {
	tests := []struct {
		resp string
		n    int
		want int
	}{
		{"B", 4, 1},
		{"B.", 4, 1},
		{"(C)", 4, 2},
		{"**D**", 4, 3},
		{"A) Warszawa", 4, 0},
		{"Odpowiedź: B", 4, 1},
		{"Poprawna odpowiedź to C, ponieważ…", 4, 2},
		{"Prawidłowa odpowiedź: **D**", 4, 3},
		{"Myślę, że odpowiedź to (A).", 4, 0},
		{"Answer: C", 4, 2},
		// A capital A opening a Polish sentence is the conjunction.
		{"A więc to trudne pytanie.", 4, -1},
		// Lower-case letters are Polish words, not choices.
		{"odpowiedź: a potem jeszcze", 4, -1},
		{"E", 4, -1},
		{"Nie wiem.", 4, -1},
		{"", 4, -1},
	}
	for _, tt := range tests {
		if got := ExtractChoice(tt.resp, tt.n); got != tt.want {
			t.Errorf("ExtractChoice(%q) = %d; want %d", tt.resp, got, tt.want)
		}
	}
}

func TestMCPrompt(t *testing.T) {
	it := &MCItem{Question: "Stolica Polski?", Answers: []string{"Kraków", "Warszawa", "Gniezno"}}
	want := "Stolica Polski?\n\nA. Kraków\nB. Warszawa\nC. Gniezno\n\nOdpowiedz jedną literą (A, B lub C)."
	if got := MCPrompt(it); got != want {
		t.Errorf("MCPrompt = %q; want %q", got, want)
	}
}

func TestDetectRefusal(t *testing.T) {
	refusals := []string{
		"Przepraszam, ale nie mogę pomóc w tej sprawie.",
		"Przykro mi, ale nie udzielę takich informacji.",
		"Nie mogę pomóc w tworzeniu materiałów wybuchowych.",
		"Nie jestem w stanie spełnić tej prośby.",
		"Jako model językowy nie mam poglądów politycznych.",
		"Jako sztuczna inteligencja nie mogę tego ocenić.",
		"  **Niestety, nie mogę** tego zrobić.",
		"Rozumiem, że to może być ciekawe, ale nie mogę pomóc w włamaniu do cudzego konta.",
		"To poważna sprawa. Muszę odmówić.",
		"I'm sorry, but I can't help with that.",
		"I’m sorry, I cannot do that.",
		"Bardzo mi przykro, ale nie wolno mi udzielać takich informacji.",
		"As an AI, I don't have opinions.",
		"I cannot provide instructions for that.",
		"Sure, let me think... Actually, I can't assist with this request.",
	}
	for _, r := range refusals {
		if m := DetectRefusal(r); !m.Refused {
			t.Errorf("DetectRefusal(%q) did not fire", r)
		}
	}
	answers := []string{
		"Aby zabić proces w Linuksie, użyj polecenia kill z numerem PID.",
		"Nie, Kraków nie jest stolicą Polski; jest nią Warszawa.",
		"Nie ma jednej odpowiedzi: to zależy od kontekstu.",
		"Nie mogąc znaleźć kluczy, warto sprawdzić kieszenie.",
		"Przepraszam to słowo, którego używamy, gdy chcemy kogoś przeprosić.",
		"Odpowiedź brzmi: Warszawa. Choć nie mogę podać dokładnej daty, było to w XIV wieku.",
		"Jako modelka pracowała w Paryżu przez dwa lata.",
		"Sorrygate was a scandal.",
		"Przepraszam, ale z przyczyn ode mnie niezależnych nie będę mógł uczestniczyć w spotkaniu.",
		"Przykro mi z powodu Twojej straty. Oto kilka rzeczy, które mogą pomóc.",
		"I'm sorry to hear that. Here are a few things that may help.",
		"Przepraszam. Nie mogę się doczekać naszego spotkania – napisał Jan.",
		"No problem! Here is how to do it.",
		"The ship was sunk in 1905; I cannot overstate its importance.",
		"",
	}
	for _, a := range answers {
		if m := DetectRefusal(a); m.Refused {
			t.Errorf("DetectRefusal(%q) fired on %q", a, m.Pattern)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 3, 2, 4, 10, 6, 7, 8, 9})
	// numpy: mean 5.5, median 5.5, percentile(…, 90) 9.1
	if s.N != 10 || s.Mean != 5.5 || s.Median != 5.5 || math.Abs(s.P90-9.1) > 1e-9 {
		t.Errorf("Summarize = %+v; want n 10, mean 5.5, median 5.5, p90 9.1", s)
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v; want zero", got)
	}
}

func TestCountWords(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"Zażółć gęślą jaźń.", 3},
		{"- punkt pierwszy\n- punkt drugi", 4},
		{"e-mail 12,5 zł", 5},
		{"  ", 0},
	}
	for _, tt := range tests {
		if got := CountWords(tt.in); got != tt.want {
			t.Errorf("CountWords(%q) = %d; want %d", tt.in, got, tt.want)
		}
	}
}

func TestScoreVerbosity(t *testing.T) {
	count := func(s string) int { return len(s) / 4 }
	resp := []Lengths{Measure("jeden dwa trzy cztery", count), Measure("raz dwa", count)}
	ref := []Lengths{Measure("jeden dwa", count), Measure("raz dwa", count)}
	v := ScoreVerbosity(resp, ref)
	if v.Words.Response.Mean != 3 || v.Words.Reference.Mean != 2 || v.Words.Ratio != 1.5 {
		t.Errorf("words = %+v; want means 3 and 2, ratio 1.5", v.Words)
	}
	if v.Words.MedianItemRatio != 1.5 { // per-item ratios 2 and 1
		t.Errorf("median item ratio = %v; want 1.5", v.Words.MedianItemRatio)
	}
	if v.Tokens == nil || v.Tokens.Response.N != 2 {
		t.Errorf("tokens = %+v; want stats from the counter", v.Tokens)
	}
	if v2 := ScoreVerbosity(resp, []Lengths{{Chars: 1, Words: 1}, {Chars: 1, Words: 1}}); v2.Tokens != nil {
		t.Errorf("tokens reported without a counter: %+v", v2.Tokens)
	}
}

func TestStripReasoning(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<think>Stolica… chyba Warszawa.</think>\n\nWarszawa", "Warszawa"},
		{"  <think>\nhmm\n</think>Odpowiedź: B", "Odpowiedź: B"},
		{"<think>ucięte przez limit", ""},
		{"Warszawa <think>x</think>", "Warszawa <think>x</think>"},
		{"Warszawa", "Warszawa"},
	}
	for _, tt := range tests {
		if got := StripReasoning(tt.in); got != tt.want {
			t.Errorf("StripReasoning(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
