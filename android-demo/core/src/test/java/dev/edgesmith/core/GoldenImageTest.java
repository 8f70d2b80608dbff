package dev.edgesmith.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/** An image bundle's golden vectors: preprocessing, greyscale, softmax / top-k, drift reports. */
public class GoldenImageTest {
    private static Map<String, Object> g;
    private static Manifest manifest;
    private static ImagePreprocessor pre;

    @BeforeClass
    public static void load() {
        g = Golden.load("image");
        manifest = Golden.manifest(g);
        pre = new ImagePreprocessor(manifest.preprocessing());
    }

    @Test
    public void preprocessedTensorsMatchPython() {
        int n = 0;
        double worst = 0;
        for (Object o : Json.list(g, "images")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> c = (Map<String, Object>) o;
            boolean last = Boolean.TRUE.equals(c.get("channels_last"));
            float[] unit = "uint8".equals(c.get("dtype")) ? pre.unitFromUint8(Golden.ints(c.get("pixels")), last)
                    : pre.unitFromFloat(Golden.floats(c.get("pixels")), last);
            worst = Math.max(worst, Golden.assertClose((String) c.get("name"), Golden.floats(c.get("input")),
                    pre.normalize(unit), Golden.tol(g)));
            n++;
        }
        assertEquals(14, n);
        System.out.println("  image preprocessing: " + n + " images, max |diff| " + worst);
    }

    @Test
    public void softmaxAndTopKMatchPython() {
        List<String> labels = manifest.labels();
        for (Object o : Json.list(g, "images")) {
            String name = Json.str(o, "name");
            float[] logits = Golden.floats(Json.list(o, "logits"));
            double[] p = Outputs.softmax(logits);
            float[] pf = new float[p.length];
            for (int i = 0; i < p.length; i++) {
                pf[i] = (float) p[i];
            }
            Golden.assertClose(name + " softmax", Golden.floats(Json.list(o, "softmax")), pf, Golden.tol(g));
            List<Object> want = Json.list(o, "top_k");
            List<Outputs.Ranked> got = Outputs.topK(p, want.size(), labels);
            for (int r = 0; r < want.size(); r++) {
                assertEquals(name + " rank " + r, ((Number) ((Map<?, ?>) want.get(r)).get("index")).intValue(), got.get(r).index);
                assertEquals(name + " rank " + r, Json.str(want.get(r), "label"), got.get(r).label);
                assertEquals(name + " rank " + r, ((Number) ((Map<?, ?>) want.get(r)).get("probability")).doubleValue(),
                        got.get(r).probability, Golden.tol(g));
            }
        }
    }

    @Test
    public void argbToGreyIsPillows() {
        Map<String, Object> a = Json.obj(g, "argb");
        assertArrayEquals(Golden.ints(a.get("grey")), ImagePreprocessor.argbToUint8(Golden.ints(a.get("argb")), 1));
    }

    @Test
    public void driftReportsMatchPython() {
        Telemetry.Tally tally = new Telemetry.Tally();
        for (Object o : Json.list(g, "telemetry")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> s = (Map<String, Object>) o;
            DriftMonitor m = new DriftMonitor(Telemetry.config(s), manifest, (String) g.get("format"),
                    Telemetry.sinks("image-" + s.get("name")));
            List<float[]> outputs = Golden.rows(s.get("outputs"));
            List<float[]> units = new ArrayList<>();
            for (Object item : (List<?>) s.get("items")) {
                units.add(pre.unitFromUint8(Golden.ints(item), false));
            }
            int at = 0;
            for (int size : Golden.ints(s.get("calls"))) {
                m.observeImages(units.subList(at, at + size), outputs.subList(at, at + size));
                at += size;
            }
            tally.add(s, m, Golden.tol(g));
        }
        tally.finish("image");
    }
}
