package dev.edgesmith.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.Assume;

/** The golden vectors the Python side wrote ({@code edgesmith.bundle.golden}), and exact / tolerant comparison. */
final class Golden {
    private Golden() {
    }

    /** The golden file named by system property {@code edgesmith.golden.<kind>}; the test is skipped without one. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> load(String kind) {
        String path = System.getProperty("edgesmith.golden." + kind, "");
        Assume.assumeTrue("no golden file for " + kind + " bundles (run-tests.sh --" + kind + "-golden FILE)",
                !path.isEmpty());
        try {
            String text = new String(Files.readAllBytes(new File(path).toPath()), StandardCharsets.UTF_8);
            Map<String, Object> g = (Map<String, Object>) Json.parse(text);
            assertEquals(path, "edgesmith.golden/1", g.get("schema"));
            assertEquals(path, kind, g.get("kind"));
            return g;
        } catch (IOException e) {
            throw new AssertionError(path + ": " + e);
        }
    }

    static Manifest manifest(Map<String, Object> g) {
        return Manifest.read(new BundleFiles.Folder(new File((String) g.get("bundle"))), true);
    }

    static double tol(Map<String, Object> g) {
        return ((Number) g.get("float_tolerance")).doubleValue();
    }

    static float[] floats(Object list) {
        @SuppressWarnings("unchecked")
        List<Object> xs = (List<Object>) list;
        float[] out = new float[xs.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) ((Number) xs.get(i)).doubleValue();
        }
        return out;
    }

    static int[] ints(Object list) {
        @SuppressWarnings("unchecked")
        List<Object> xs = (List<Object>) list;
        int[] out = new int[xs.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) xs.get(i)).intValue();
        }
        return out;
    }

    static List<float[]> rows(Object list) {
        List<float[]> out = new ArrayList<>();
        for (Object r : (List<?>) list) {
            out.add(floats(r));
        }
        return out;
    }

    /** Largest |a - b|, failing when above {@code tol}. */
    static double assertClose(String what, float[] want, float[] got, double tol) {
        assertEquals(what + ": length", want.length, got.length);
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            worst = Math.max(worst, Math.abs((double) want[i] - got[i]));
        }
        assertTrue(what + ": max |diff| " + worst + " > " + tol, worst <= tol);
        return worst;
    }

    /**
     * Two JSON trees equal: same keys in the same order, strings / booleans / nulls / integers exactly,
     * other numbers within {@code tol}; keys named in {@code skip} are not compared (at any depth).
     */
    static void assertJson(String path, Object want, Object got, double tol, String skip) {
        assertJson(path, want, got, tol, skip == null ? java.util.Collections.<String>emptySet()
                : java.util.Collections.singleton(skip));
    }

    @SuppressWarnings("unchecked")
    static void assertJson(String path, Object want, Object got, double tol, java.util.Set<String> skip) {
        if (want instanceof Map) {
            if (!(got instanceof Map)) {
                fail(path + ": expected an object, got " + got);
            }
            Map<String, Object> w = (Map<String, Object>) want;
            Map<String, Object> g = (Map<String, Object>) got;
            assertEquals(path + ": keys", new ArrayList<>(w.keySet()), new ArrayList<>(g.keySet()));
            for (String k : w.keySet()) {
                if (!skip.contains(k)) {
                    assertJson(path + "." + k, w.get(k), g.get(k), tol, skip);
                }
            }
        } else if (want instanceof List) {
            if (!(got instanceof List)) {
                fail(path + ": expected a list, got " + got);
            }
            List<Object> w = (List<Object>) want;
            List<Object> g = (List<Object>) got;
            assertEquals(path + ": length", w.size(), g.size());
            Iterator<Object> gi = g.iterator();
            int i = 0;
            for (Object x : w) {
                assertJson(path + "[" + i++ + "]", x, gi.next(), tol, skip);
            }
        } else if (want instanceof Number && got instanceof Number) {
            double a = ((Number) want).doubleValue();
            double b = ((Number) got).doubleValue();
            if (want instanceof Long && got instanceof Long) {
                assertEquals(path, want, got);
            } else if (!(Double.isNaN(a) && Double.isNaN(b))) {
                assertTrue(path + ": " + b + " vs " + a, Math.abs(a - b) <= tol);
            }
        } else {
            assertEquals(path, want, got);
        }
    }
}
