"""Writes N OpenAI-format JSONL samples of about 1 KB of Polish text, and
the same samples as a PLLuMIC JSON array, for the read+validate benchmark."""
import json, random, sys

words = """Wisła jest najdłuższą rzeką Polski płynie przez Kraków Warszawę Toruń oraz Gdańsk
uchodzi do Morza Bałtyckiego źródła leżą na stokach Baraniej Góry w Beskidzie Śląskim napisz krótki wiersz
o jesieni w Tatrach złote buki nad Morskim Okiem mgła się snuje cichym krokiem halny gwiżdże nad Giewontem
bitwa pod Grunwaldem odbyła się lipca roku król Władysław Jagiełło wielki książę Witold zaświadczenie
o zatrudnieniu potrzebuję do banku najlepiej do końca tygodnia szanowna pani uprzejmie proszę odpowiedź
zgodnie z zasadami polskiej interpunkcji przecinek przed że który ponieważ gdy żeby mimo że chyba że""".split()

n, jsonl, pllumic = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(1)
text = lambda k: " ".join(rng.choice(words) for _ in range(k))
with open(jsonl, "w") as f, open(pllumic, "w") as g:
    g.write("[\n")
    for i in range(n):
        msgs = [{"role": "system", "content": "Jesteś pomocnym asystentem."},
                {"role": "user", "content": text(34)},
                {"role": "assistant", "content": text(66)}]
        f.write(json.dumps({"id": f"s{i}", "messages": msgs}, ensure_ascii=False) + "\n")
        conv = {"conv_id": i, "messages": [dict(m, seq=-1 if m["role"] == "system" else 0, language="pol",
                                                type="Dialog", source=[]) for m in msgs]}
        g.write(("" if i == 0 else ",\n") + json.dumps(conv, ensure_ascii=False))
    g.write("\n]\n")
