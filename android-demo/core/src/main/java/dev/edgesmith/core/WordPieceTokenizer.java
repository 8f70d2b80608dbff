package dev.edgesmith.core;

import java.io.IOException;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * BERT's tokenizer, read from a bundle's tokenizer folder, giving the ids Hugging Face
 * {@code tokenizers} gives (the Python bundle loader's): special tokens matched in the raw text,
 * then per piece BERT normalisation (control characters dropped, whitespace to spaces, spaces around
 * CJK ideographs, accents stripped, lower case), splitting on whitespace and punctuation, greedy
 * longest-match-first WordPiece with {@code ##} continuations, {@code [CLS] ... [SEP]}, truncation to
 * {@code max_length} and right padding with the attention mask.
 *
 * <p>Reads {@code tokenizer.json} (vocabulary, normaliser flags, added tokens, template) or, without it,
 * {@code vocab.txt} with {@code tokenizer_config.json}.
 */
public final class WordPieceTokenizer {
    private final Map<String, Integer> vocab;
    private final String unk;
    private final String prefix;
    private final int maxCharsPerWord;
    private final boolean cleanText;
    private final boolean chineseChars;
    private final boolean stripAccents;
    private final boolean lowercase;
    private final int clsId;
    private final int sepId;
    private final int padId;
    private final List<String> raw;  // added tokens matched in the text before normalisation
    private final int maxLength;

    private WordPieceTokenizer(Map<String, Integer> vocab, String unk, String prefix, int maxCharsPerWord,
                               boolean cleanText, boolean chineseChars, boolean stripAccents, boolean lowercase,
                               int clsId, int sepId, int padId, List<String> raw, int maxLength) {
        this.vocab = vocab;
        this.unk = unk;
        this.prefix = prefix;
        this.maxCharsPerWord = maxCharsPerWord;
        this.cleanText = cleanText;
        this.chineseChars = chineseChars;
        this.stripAccents = stripAccents;
        this.lowercase = lowercase;
        this.clsId = clsId;
        this.sepId = sepId;
        this.padId = padId;
        this.raw = raw;
        this.maxLength = maxLength;
        if (!vocab.containsKey(unk)) {
            throw new BundleException("tokenizer: the unknown token " + unk + " is not in the vocabulary");
        }
    }

    /** The tokenizer a text bundle's manifest names ({@code preprocessing.tokenizer}, {@code max_length}). */
    public static WordPieceTokenizer fromManifest(Manifest m) {
        Map<String, Object> spec = m.preprocessing();
        if (!"text".equals(Json.str(spec, "kind"))) {
            throw new BundleException(m.files().describe(Manifest.MANIFEST) + ": not a text bundle");
        }
        String folder = Manifest.safePath(m.files(), spec.get("tokenizer"), m.files().describe(Manifest.MANIFEST));
        return load(m.files(), folder, ((Number) spec.get("max_length")).intValue());
    }

    /** Reads {@code folder/tokenizer.json}, else {@code folder/vocab.txt} + {@code tokenizer_config.json}. */
    @SuppressWarnings("unchecked")
    public static WordPieceTokenizer load(BundleFiles files, String folder, int maxLength) {
        String json = folder + "/tokenizer.json";
        try {
            if (files.isFile(json)) {
                Map<String, Object> t = (Map<String, Object>) Json.parse(files.readText(json));
                Map<String, Object> model = Json.obj(t, "model");
                if (model == null || !"WordPiece".equals(model.get("type"))) {
                    throw new BundleException(files.describe(json) + ": model type "
                            + Json.str(model, "type") + " is not WordPiece; this app reads BERT tokenizers only");
                }
                Map<String, Integer> vocab = new HashMap<>();
                for (Map.Entry<String, Object> e : Json.obj(model, "vocab").entrySet()) {
                    vocab.put(e.getKey(), ((Number) e.getValue()).intValue());
                }
                Map<String, Object> norm = Json.obj(t, "normalizer");
                if (norm != null && !"BertNormalizer".equals(norm.get("type"))) {
                    throw new BundleException(files.describe(json) + ": normalizer " + norm.get("type")
                            + " is not BertNormalizer; this app reads BERT tokenizers only");
                }
                boolean lower = norm == null || !Boolean.FALSE.equals(norm.get("lowercase"));
                Object strip = norm == null ? null : norm.get("strip_accents");
                List<String> raw = new ArrayList<>();
                List<Object> added = Json.list(t, "added_tokens");
                for (Object a : added == null ? new ArrayList<>() : added) {
                    vocab.put(Json.str(a, "content"), ((Number) ((Map<String, Object>) a).get("id")).intValue());
                    raw.add(Json.str(a, "content"));
                }
                int[] template = template(Json.obj(t, "post_processor"), vocab);
                Map<String, Object> pad = Json.obj(t, "padding");
                int padId = pad != null && pad.get("pad_id") != null ? ((Number) pad.get("pad_id")).intValue()
                        : vocab.getOrDefault(configToken(files, folder, "pad_token", "[PAD]"), 0);
                Object maxChars = model.get("max_input_chars_per_word");
                return new WordPieceTokenizer(vocab, Json.str(model, "unk_token"),
                        model.get("continuing_subword_prefix") == null ? "##" : Json.str(model, "continuing_subword_prefix"),
                        maxChars == null ? 100 : ((Number) maxChars).intValue(),
                        norm == null || !Boolean.FALSE.equals(norm.get("clean_text")),
                        norm == null || !Boolean.FALSE.equals(norm.get("handle_chinese_chars")),
                        strip == null ? lower : (Boolean) strip, lower, template[0], template[1], padId, raw, maxLength);
            }
            String vocabTxt = folder + "/vocab.txt";
            if (!files.isFile(vocabTxt)) {
                throw new BundleException(files.describe(folder) + ": neither tokenizer.json nor vocab.txt here");
            }
            Map<String, Integer> vocab = new HashMap<>();
            String[] lines = files.readText(vocabTxt).split("\n", -1);
            for (int i = 0; i < lines.length; i++) {
                String tok = lines[i].endsWith("\r") ? lines[i].substring(0, lines[i].length() - 1) : lines[i];
                if (!(i == lines.length - 1 && tok.isEmpty())) {
                    vocab.putIfAbsent(tok, i);
                }
            }
            Map<String, Object> cfg = config(files, folder);
            boolean lower = !Boolean.FALSE.equals(cfg.get("do_lower_case"));
            Object strip = cfg.get("strip_accents");
            List<String> raw = new ArrayList<>();
            for (String k : new String[] {"cls_token", "sep_token", "pad_token", "unk_token", "mask_token"}) {
                raw.add(configToken(files, folder, k, "[" + k.substring(0, k.indexOf('_')).toUpperCase() + "]"));
            }
            return new WordPieceTokenizer(vocab, raw.get(3), "##", 100, true,
                    !Boolean.FALSE.equals(cfg.get("tokenize_chinese_chars")), strip == null ? lower : (Boolean) strip,
                    lower, id(vocab, raw.get(0)), id(vocab, raw.get(1)), id(vocab, raw.get(2)), raw, maxLength);
        } catch (IOException | IllegalArgumentException | ClassCastException e) {
            throw new BundleException(files.describe(folder) + ": cannot read the tokenizer (" + e.getMessage() + ")");
        }
    }

    private static int id(Map<String, Integer> vocab, String tok) {
        Integer i = vocab.get(tok);
        if (i == null) {
            throw new BundleException("tokenizer: special token " + tok + " is not in the vocabulary");
        }
        return i;
    }

    @SuppressWarnings("unchecked")
    private static int[] template(Map<String, Object> post, Map<String, Integer> vocab) {
        if (post == null) {
            return new int[] {id(vocab, "[CLS]"), id(vocab, "[SEP]")};
        }
        if ("BertProcessing".equals(post.get("type")) || "RobertaProcessing".equals(post.get("type"))) {
            return new int[] {((Number) Json.list(post, "cls").get(1)).intValue(),
                              ((Number) Json.list(post, "sep").get(1)).intValue()};
        }
        if (!"TemplateProcessing".equals(post.get("type"))) {
            throw new BundleException("tokenizer: post_processor " + post.get("type") + " is not supported");
        }
        List<Object> single = Json.list(post, "single");
        Map<String, Object> special = Json.obj(post, "special_tokens");
        String first = Json.str(Json.obj(single.get(0), "SpecialToken"), "id");
        String last = Json.str(Json.obj(single.get(single.size() - 1), "SpecialToken"), "id");
        if (single.size() != 3 || first == null || last == null) {
            throw new BundleException("tokenizer: the template is not [CLS] $A [SEP]");
        }
        return new int[] {((Number) Json.list(special.get(first), "ids").get(0)).intValue(),
                          ((Number) Json.list(special.get(last), "ids").get(0)).intValue()};
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> config(BundleFiles files, String folder) throws IOException {
        String path = folder + "/tokenizer_config.json";
        return files.isFile(path) ? (Map<String, Object>) Json.parse(files.readText(path)) : new HashMap<>();
    }

    private static String configToken(BundleFiles files, String folder, String key, String fallback) throws IOException {
        Object v = config(files, folder).get(key);
        if (v instanceof Map) {
            v = ((Map<?, ?>) v).get("content");
        }
        return v instanceof String ? (String) v : fallback;
    }

    /** The manifest's {@code max_length}: longest sequence, special tokens included. */
    public int maxLength() {
        return maxLength;
    }

    public int padId() {
        return padId;
    }

    // ------------------------------------------------------------------ encoding

    /** Token ids of {@code text} with {@code [CLS]}/{@code [SEP]}, truncated to {@code maxLength} (0: the manifest's). */
    public int[] encode(String text, int maxLength) {
        int limit = maxLength > 0 ? maxLength : this.maxLength;
        List<Integer> ids = new ArrayList<>();
        for (String piece : splitAdded(text)) {
            Integer special = raw.contains(piece) ? vocab.get(piece) : null;
            if (special != null) {
                ids.add(special);
                continue;
            }
            for (String word : preTokenize(normalize(piece))) {
                wordPiece(word, ids);
            }
        }
        int keep = Math.max(0, Math.min(ids.size(), limit - 2));
        int[] out = new int[keep + 2];
        out[0] = clsId;
        for (int i = 0; i < keep; i++) {
            out[i + 1] = ids.get(i);
        }
        out[keep + 1] = sepId;
        return out;
    }

    /** Tokens per text after truncation, special tokens included (the drift hook's token length). */
    public int length(String text, int maxLength) {
        return encode(text, maxLength).length;
    }

    /** A padded batch: flat {@code (batch, seqLen)} ids and attention mask, as a runtime takes them. */
    public static final class Batch {
        public final long[] inputIds;
        public final long[] attentionMask;
        public final int batch;
        public final int seqLen;

        Batch(long[] inputIds, long[] attentionMask, int batch, int seqLen) {
            this.inputIds = inputIds;
            this.attentionMask = attentionMask;
            this.batch = batch;
            this.seqLen = seqLen;
        }

        /** Tokens of row {@code i} (its attention mask's sum). */
        public int length(int i) {
            int n = 0;
            for (int j = 0; j < seqLen; j++) {
                n += (int) attentionMask[i * seqLen + j];
            }
            return n;
        }
    }

    /**
     * Encodes texts as the loader does: padded to the longest (padTo 0, truncated to max_length) or to a
     * static-shape file's sequence length {@code padTo} (truncated to it).
     */
    public Batch encodeBatch(List<String> texts, int padTo) {
        List<int[]> rows = new ArrayList<>();
        int longest = 0;
        for (String t : texts) {
            int[] ids = encode(t, padTo > 0 ? padTo : maxLength);
            rows.add(ids);
            longest = Math.max(longest, ids.length);
        }
        int len = padTo > 0 ? padTo : longest;
        long[] ids = new long[texts.size() * len];
        long[] mask = new long[texts.size() * len];
        for (int i = 0; i < rows.size(); i++) {
            int[] r = rows.get(i);
            for (int j = 0; j < len; j++) {
                ids[i * len + j] = j < r.length ? r[j] : padId;
                mask[i * len + j] = j < r.length ? 1 : 0;
            }
        }
        return new Batch(ids, mask, texts.size(), len);
    }

    /** The text cut around added (special) tokens, matched leftmost-longest in the raw text. */
    List<String> splitAdded(String text) {
        List<String> out = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            String best = null;
            for (String a : raw) {
                if (!a.isEmpty() && text.startsWith(a, i) && (best == null || a.length() > best.length())) {
                    best = a;
                }
            }
            if (best == null) {
                i++;
                continue;
            }
            if (i > start) {
                out.add(text.substring(start, i));
            }
            out.add(best);
            i += best.length();
            start = i;
        }
        if (start < text.length()) {
            out.add(text.substring(start));
        }
        return out;
    }

    /** BERT normalisation of one piece of text. */
    String normalize(String s) {
        StringBuilder b = new StringBuilder();
        s.codePoints().forEach(cp -> {
            if (cleanText) {
                if (cp == 0 || cp == 0xfffd || BertChars.isControl(cp)) {
                    return;
                }
                if (BertChars.isWhitespace(cp)) {
                    cp = ' ';
                }
            }
            if (chineseChars && BertChars.isChinese(cp)) {
                b.append(' ').appendCodePoint(cp).append(' ');
            } else {
                b.appendCodePoint(cp);
            }
        });
        String t = b.toString();
        if (stripAccents) {
            StringBuilder c = new StringBuilder();
            Normalizer.normalize(t, Normalizer.Form.NFD).codePoints().forEach(cp -> {
                if (!BertChars.isMark(cp)) {
                    c.appendCodePoint(cp);
                }
            });
            t = c.toString();
        }
        if (lowercase) {
            StringBuilder c = new StringBuilder();
            t.codePoints().forEach(cp -> {
                if (cp == 0x130) {  // the one unconditional multi-character lower case (Rust's char::to_lowercase)
                    c.append("i\u0307");
                } else {
                    c.appendCodePoint(Character.toLowerCase(cp));
                }
            });
            t = c.toString();
        }
        return t;
    }

    /** Words: split on whitespace, every punctuation character a word of its own. */
    static List<String> preTokenize(String s) {
        List<String> out = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        s.codePoints().forEach(cp -> {
            if (BertChars.isWhitespace(cp)) {
                flush(word, out);
            } else if (BertChars.isPunctuation(cp)) {
                flush(word, out);
                out.add(new String(Character.toChars(cp)));
            } else {
                word.appendCodePoint(cp);
            }
        });
        flush(word, out);
        return out;
    }

    private static void flush(StringBuilder word, List<String> out) {
        if (word.length() > 0) {
            out.add(word.toString());
            word.setLength(0);
        }
    }

    /** Greedy longest-match-first WordPiece of one word, appended to {@code ids}; [UNK] for the whole word on a miss. */
    void wordPiece(String word, List<Integer> ids) {
        int[] cps = word.codePoints().toArray();
        if (cps.length > maxCharsPerWord) {
            ids.add(vocab.get(unk));
            return;
        }
        List<Integer> pieces = new ArrayList<>();
        int start = 0;
        while (start < cps.length) {
            int end = cps.length;
            Integer found = null;
            while (start < end) {
                String sub = new String(cps, start, end - start);
                if (start > 0) {
                    sub = prefix + sub;
                }
                found = vocab.get(sub);
                if (found != null) {
                    break;
                }
                end--;
            }
            if (found == null) {
                ids.add(vocab.get(unk));
                return;
            }
            pieces.add(found);
            start = end;
        }
        ids.addAll(pieces);
    }
}
