package dev.edgesmith.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/** A text bundle's golden vectors: token ids of tricky texts, padded batches, every code point, cosines, drift. */
public class GoldenTextTest {
    private static Map<String, Object> g;
    private static Manifest manifest;
    private static WordPieceTokenizer tok;

    @BeforeClass
    public static void load() {
        g = Golden.load("text");
        manifest = Golden.manifest(g);
        tok = WordPieceTokenizer.fromManifest(manifest);
    }

    @Test
    public void trickyTextsGiveTheSameIds() {
        assertEquals(((Number) g.get("max_length")).intValue(), tok.maxLength());
        int n = 0;
        for (Object o : Json.list(g, "texts")) {
            String text = Json.str(o, "text");
            int[] want = Golden.ints(Json.list(o, "input_ids"));
            int[] got = tok.encode(text, 0);
            assertArrayEquals("ids of " + Json.write(text), want, got);
            WordPieceTokenizer.Batch b = tok.encodeBatch(List.of(text), 0);
            long[] mask = new long[b.attentionMask.length];
            int[] wantMask = Golden.ints(Json.list(o, "attention_mask"));
            for (int i = 0; i < mask.length; i++) {
                mask[i] = wantMask[i];
            }
            assertArrayEquals("mask of " + Json.write(text), mask, b.attentionMask);
            n++;
        }
        assertEquals(13, n);
    }

    @Test
    public void paddedBatchesMatch() {
        List<String> texts = new ArrayList<>();
        for (Object o : Json.list(g, "texts")) {
            texts.add(Json.str(o, "text"));
        }
        for (Object o : Json.list(g, "batches")) {
            int padTo = ((Number) ((Map<?, ?>) o).get("pad_to")).intValue();
            WordPieceTokenizer.Batch b = tok.encodeBatch(texts, padTo);
            List<Object> ids = Json.list(o, "input_ids");
            List<Object> mask = Json.list(o, "attention_mask");
            assertEquals("rows", ids.size(), b.batch);
            for (int i = 0; i < b.batch; i++) {
                int[] wantIds = Golden.ints(ids.get(i));
                int[] wantMask = Golden.ints(mask.get(i));
                assertEquals("pad_to " + padTo + ": sequence length", wantIds.length, b.seqLen);
                for (int j = 0; j < b.seqLen; j++) {
                    assertEquals("pad_to " + padTo + " row " + i + " id " + j, wantIds[j], b.inputIds[i * b.seqLen + j]);
                    assertEquals("pad_to " + padTo + " row " + i + " mask " + j, wantMask[j],
                            b.attentionMask[i * b.seqLen + j]);
                }
            }
        }
    }

    @Test
    public void everyCodePointTokenizesAlike() throws Exception {
        Map<String, Object> sweep = Json.obj(g, "sweep");
        int stop = ((Number) sweep.get("stop")).intValue();
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        StringBuilder line = new StringBuilder();
        int n = 0;
        for (int cp = 0; cp < stop; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                continue;
            }
            int[] ids = tok.encode("a" + new String(Character.toChars(cp)) + "b", Integer.MAX_VALUE);
            line.setLength(0);
            line.append(cp).append(' ');
            for (int i = 0; i < ids.length; i++) {
                line.append(i == 0 ? "" : " ").append(ids[i]);
            }
            line.append('\n');
            md.update(line.toString().getBytes(StandardCharsets.UTF_8));
            n++;
        }
        assertEquals("sha256 of the ids of " + n + " code points", sweep.get("sha256"), Manifest.hex(md.digest()));
    }

    @Test
    public void cosinesMatchPython() {
        List<float[]> emb = Golden.rows(g.get("embeddings"));
        for (Object o : Json.list(g, "cosines")) {
            Map<?, ?> c = (Map<?, ?>) o;
            int a = ((Number) c.get("a")).intValue();
            int b = ((Number) c.get("b")).intValue();
            assertEquals("cosine " + a + "/" + b, ((Number) c.get("cosine")).doubleValue(),
                    Outputs.cosine(emb.get(a), emb.get(b)), Golden.tol(g));
        }
    }

    @Test
    public void driftReportsMatchPython() {
        Telemetry.Tally tally = new Telemetry.Tally();
        for (Object o : Json.list(g, "telemetry")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> s = (Map<String, Object>) o;
            DriftMonitor m = new DriftMonitor(Telemetry.config(s), manifest, (String) g.get("format"),
                    Telemetry.sinks("text-" + s.get("name")));
            List<float[]> outputs = Golden.rows(s.get("outputs"));
            List<Object> items = Json.list(s, "items");
            int[] lengths = new int[items.size()];
            for (int i = 0; i < lengths.length; i++) {
                lengths[i] = tok.length((String) items.get(i), 0);
            }
            int at = 0;
            for (int size : Golden.ints(s.get("calls"))) {
                int[] part = java.util.Arrays.copyOfRange(lengths, at, at + size);
                m.observeTexts(part, outputs.subList(at, at + size));
                at += size;
            }
            tally.add(s, m, Golden.tol(g));
        }
        tally.finish("text");
    }
}
