// Deterministic generator of varied Polish test strings for tokenizer goldens:
// real sentences and paragraphs, recombined and perturbed with the things that
// break tokenizers (runs of whitespace, digits, emoji, other scripts,
// special-token strings inside text, decomposed diacritics).

export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sentences = [
  'Zażółć gęślą jaźń.',
  'W Szczebrzeszynie chrząszcz brzmi w trzcinie i Szczebrzeszyn z tego słynie.',
  'Pchnąć w tę łódź jeża lub ośm skrzyń fig.',
  'Dzień dobry, chciałbym zapytać o godziny otwarcia urzędu.',
  'Mimo że padał deszcz, poszliśmy na długi spacer brzegiem Wisły.',
  'Warszawa jest stolicą Polski od końca XVI wieku.',
  'Maria Skłodowska-Curie jako pierwsza kobieta otrzymała Nagrodę Nobla.',
  'Proszę podać numer zamówienia oraz adres e-mail użyty przy rejestracji.',
  'Temperatura spadnie w nocy do –5°C, a na drogach pojawi się gołoledź.',
  'Czy możesz wyjaśnić, dlaczego niebo jest niebieskie?',
  'Nie wiem, który autobus jedzie na dworzec, ale zapytam kierowcę.',
  'Książka „Lalka” Bolesława Prusa ukazała się w 1890 r.',
  'Umowa wchodzi w życie z dniem 1 stycznia 2025 r. i obowiązuje przez 12 miesięcy.',
  'Koszt naprawy wyniósł 12 345,67 zł brutto, czyli o 3,5% więcej niż zakładano.',
  'Szanowny Panie,\nuprzejmie informuję, że wniosek został rozpatrzony pozytywnie.\nZ poważaniem\nAnna Kowalska',
  'Źdźbło trawy kołysało się na wietrze, a pszczoły brzęczały nad łąką.',
  'Gdybym wiedział wcześniej, przyjechałbym po ciebie na lotnisko.',
  'Żółw i żaba żyją w stawie obok starej wierzby.',
  'Ile kosztuje bilet ulgowy na pociąg z Krakowa do Gdańska?',
  'Lekarz zalecił odpoczynek, dużo płynów i paracetamol trzy razy dziennie.',
  'Polszczyzna ma siedem przypadków: mianownik, dopełniacz, celownik, biernik, narzędnik, miejscownik i wołacz.',
  'Przepraszam, ale nie mogę pomóc w tej sprawie.',
  'Jako model językowy nie mam dostępu do internetu w czasie rzeczywistym.',
  'Oto lista zakupów: mleko, chleb, masło, jajka (10 szt.), pomidory.',
  'Wzór na pole koła to P = πr², gdzie r oznacza promień.',
  'Krzysztof Kieślowski wyreżyserował „Trzy kolory”: Niebieski, Biały i Czerwony.',
  'Rok 1989 przyniósł Polsce pierwsze częściowo wolne wybory.',
  'Kto rano wstaje, temu Pan Bóg daje.',
  'Nie chwal dnia przed zachodem słońca!',
  'Tatry to najwyższe pasmo Karpat; najwyższy szczyt Polski, Rysy, ma 2499 m n.p.m.',
  'Ćwiczenie 3.: uzupełnij luki odpowiednią formą czasownika „być”.',
  'Mój numer telefonu to +48 600 123 456, proszę dzwonić po 17:00.',
  'Spotkanie odbędzie się 31.01.2004 r. o godz. 9:30 w sali nr 204.',
  'Dlaczego ćmy lecą do światła? Naukowcy wciąż się spierają.',
  'Chciałabym zamówić pizzę z podwójnym serem i oliwkami.',
  'W latach 70. w Polsce budowano wiele osiedli z wielkiej płyty.',
  'Pan Tadeusz, czyli ostatni zajazd na Litwie — epopeja narodowa Adama Mickiewicza.',
  'Jeśli temperatura przekroczy 38 stopni, należy skontaktować się z lekarzem.',
  'Średnia ocen w klasie wyniosła 4,25; najlepszy wynik uzyskała Zuzanna.',
  'Pociąg IC 5310 „Ślązak” jest opóźniony o około 25 minut.',
  'Zamknij drzwi na klucz, zanim wyjdziesz z domu.',
  'Przykładowy kod: for (int i = 0; i < n; i++) { suma += tab[i]; }',
  'Adres strony: https://www.gov.pl/web/cyfryzacja?strona=2&sort=data',
  'Hasło musi mieć co najmniej 8 znaków, w tym cyfrę i znak specjalny (!@#$%^&*).',
  'Ala ma kota, a kot ma Alę.',
  'Wszystkiego najlepszego z okazji urodzin! 🎉🎂',
  'Ten film był świetny 👍, ale zakończenie mnie rozczarowało 😕.',
  'Słowo „szczęście” ma w sobie aż cztery spółgłoski z rzędu: „szcz”.',
  'Wyróżniamy samogłoski ustne (a, e, i, o, u, y) i nosowe (ą, ę).',
  'Odpowiedź: B) 1410 r. — bitwa pod Grunwaldem.',
];

const words = ('zażółcić gęś jaźń źrebię żądło łódź ćma śnieg ńaf dzień noc miasto wieś rzeka góra '
  + 'chrząszcz źdźbło bezwzględnie najprawdopodobniej konstantynopolitańczykowianeczka '
  + 'niezadowolony przedsiębiorstwo współpraca rzeczpospolita województwo powiat gmina '
  + 'samorząd obywatel ustawa rozporządzenie sprawozdanie Kraków Łódź Wrocław Poznań Gdańsk '
  + 'Szczecin Bydgoszcz Lublin Białystok Katowice Częstochowa Zielona Góra Świętokrzyskie '
  + 'uczeń nauczyciel szkoła matura egzamin wypracowanie lektura ortografia interpunkcja '
  + 'jeść pić spać biegać pływać czytać pisać mówić myśleć rozumieć wiedzieć chcieć').split(/\s+/);

const specials = ['<s>', '</s>', '<unk>', '<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>',
  '<|end_header_id|>', '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>',
  '<tool_call>', '<bos>', '<eos>', '<pad>', '<start_of_turn>', '<end_of_turn>', '<mask>',
  '<unused7>', '[INST]', '[/INST]', '<0x0A>', '<|reserved_special_token_3|>', '</b>', '<h1>'];

const emoji = ['😀', '👍', '👍🏽', '🇵🇱', '👨‍👩‍👧', '❤️', '🎉', '🙂', '🚀', '☕', '⚠️', '✅', '🥟'];

const foreign = ['Привет, как дела?', 'Γειά σου κόσμε', '你好，世界', 'こんにちは', 'مرحبا بالعالم',
  'שלום עולם', 'Ahoj, jak se máš?', 'Grüß Gott, Straße', 'Ça va? Très bien.', 'Ελλάδα', 'İstanbul',
  'Tiếng Việt có dấu', 'नमस्ते', '한국어 텍스트', 'Ёлка и ёж'];

const oddSpaces = [' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', ' \n', '\n ', '\r\n',
  '\u00a0', '\u2009', '\u3000', '\u2028', ' \t \n', '\u200b', '\ufeff', '        '];

const punct = ['.', ',', '!', '?', '…', '...', ':', ';', '—', '–', '-', '„', '”', '"', "'", '«', '»',
  '(', ')', '[', ']', '{', '}', '/', '\\', '*', '#', '@', '%', '&', '+', '=', '<', '>', '|', '~', '^', '`'];

const pick = (r, a) => a[Math.floor(r() * a.length)];

function number(r) {
  switch (Math.floor(r() * 7)) {
    case 0: return String(Math.floor(r() * 10));
    case 1: return String(Math.floor(r() * 100000));
    case 2: return String(Math.floor(r() * 1e12));
    case 3: return (r() * 1000).toFixed(2).replace('.', ',');
    case 4: return `${1 + Math.floor(r() * 28)}.${String(1 + Math.floor(r() * 12)).padStart(2, '0')}.${1900 + Math.floor(r() * 130)}`;
    case 5: return `${Math.floor(r() * 100)} ${String(Math.floor(r() * 1000)).padStart(3, '0')}`;
    default: return `${Math.floor(r() * 24)}:${String(Math.floor(r() * 60)).padStart(2, '0')}`;
  }
}

function perturbWord(r, w) {
  switch (Math.floor(r() * 10)) {
    case 0: return w.toUpperCase();
    case 1: return w[0].toUpperCase() + w.slice(1);
    case 2: return w.normalize('NFD'); // decomposed diacritics: NFC normalizers must recompose
    default: return w;
  }
}

// paragraph joins sentences, separated mostly by single spaces.
function paragraph(r, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(pick(r, sentences));
    out.push(r() < 0.8 ? ' ' : pick(r, ['\n', '\n\n', '  ']));
  }
  return out.join('').trim();
}

// noisy builds a string from random parts of every kind.
function noisy(r) {
  const n = 1 + Math.floor(r() * 20);
  const parts = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.35) parts.push(perturbWord(r, pick(r, words)));
    else if (k < 0.5) parts.push(pick(r, oddSpaces));
    else if (k < 0.6) parts.push(number(r));
    else if (k < 0.7) parts.push(pick(r, punct).repeat(1 + Math.floor(r() * 3)));
    else if (k < 0.76) parts.push(pick(r, emoji));
    else if (k < 0.82) parts.push(pick(r, specials));
    else if (k < 0.88) parts.push(pick(r, foreign));
    else parts.push(pick(r, sentences));
    if (r() < 0.6) parts.push(' ');
  }
  return parts.join('');
}

const edgeCases = [
  '', ' ', '  ', '\n', '\n\n\n', '\t', ' \t\n ', '\r\n', '\r', 'a', 'ą', 'ĄĘÓŁŚŻŹĆŃ', 'ąęółśżźćń',
  'a\u0328', 'z\u0307', 'Z\u0307o\u0301\u0142w', '1234567890', '3,14', '12 345,67', '31.01.2004 r.',
  '😀👍🏽🇵🇱', '👨‍👩‍👧', '<s>', '</s>', '<s><s></s>', ' <s> ', '<|begin_of_text|>', '<|eot_id|>',
  '<|im_start|>user\nCześć, jak się masz?<|im_end|>\n<|im_start|>assistant\n',
  '<start_of_turn>user\nCo to jest fotosynteza?<end_of_turn>\n<start_of_turn>model\n',
  '<|start_header_id|>user<|end_header_id|>\n\nZażółć gęślą jaźń<|eot_id|>',
  '[INST] Napisz wiersz o morzu. [/INST]', '<bos><bos>', '<pad>', '<unk>', '<think>\n\n</think>\n\n',
  '▁', '▁▁x', 'x▁y', 'Ġ', "'s 'S 'll 'LL 'ſ 'Ve 'RE 'd 'M 't", "don't", "it's", "Ala's",
  'x\u00a0y', 'x\u00a0\u00a0y', '\u2028', '\u3000\u3000a', '\ufeffTekst', 'a\u200bb',
  'Привет мир', 'Γειά σου', '你好世界', 'مرحبا', 'שלום', 'こんにちは', '🙂'.repeat(20),
  ' '.repeat(100), 'a'.repeat(300), 'ż'.repeat(200), '\n'.repeat(40), '\t'.repeat(40),
  'x' + ' '.repeat(40) + 'y', '<<<>>>', '<0x0A>', '<0xC4>', '∑∫√∞', 'ﬁ ﬂ ﬀ', 'Ⅻ ²³ ①②', '½ ¾',
  'ab12cd345ef6789', '0000000000000001', 'https://example.pl/ścieżka?q=zażółć&x=1',
  'func main() {\n\tfmt.Println("cześć")\n}\n', '  leading', 'trailing  ', ' both ', '\n\nx\n\n',
  'A.B.C.D.', '...', '—–-', '„cytat”', '«»', '“English quotes”', 'e-mail: jan.kowalski@poczta.pl',
  'ĄąĆćĘęŁłŃńÓóŚśŹźŻż', 'Ǆ ǅ ǆ', 'ß ẞ', 'İı', '\u0301', 'a\u0301\u0301\u0301', '\u00ad', '\u0000x',
  '\u001b[31mkolor\u001b[0m', 'x\ty\tz', 'a \n b \t c', '  \n  \n  ', '12:30–14:45', '+48 600 123 456',
  '<|reserved_special_token_3|>', '<unused7>', '<mask>', '</think>', '<tool_call>{"name": "pogoda"}</tool_call>',
  '<end_of_turn><start_of_turn>', '<|endoftext|><|endoftext|>', 'tekst<|im_end|>tekst', 'słowo</s>słowo',
];

// strings returns the golden inputs: fixed edge cases, then generated ones.
export function strings(count, seed = 20261126) {
  const r = rng(seed);
  const out = [...edgeCases];
  while (out.length < count) {
    const k = r();
    if (k < 0.3) out.push(pick(r, sentences));
    else if (k < 0.5) out.push(paragraph(r, 2 + Math.floor(r() * 8)));
    else if (k < 0.95) out.push(noisy(r));
    else out.push(paragraph(r, 20 + Math.floor(r() * 20)));
  }
  return out;
}

// corpus returns n paragraphs of plain Polish prose for benchmarks.
export function corpus(n, seed = 7) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) out.push(paragraph(r, 3 + Math.floor(r() * 6)));
  return out;
}
