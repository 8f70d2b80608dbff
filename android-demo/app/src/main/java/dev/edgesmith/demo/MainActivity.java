package dev.edgesmith.demo;

import android.app.Activity;
import android.content.Intent;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import android.os.Bundle;
import android.provider.MediaStore;
import android.text.InputType;
import android.view.View;
import android.widget.Button;
import android.widget.EditText;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.TextView;
import dev.edgesmith.core.BundleFiles;
import dev.edgesmith.core.ImagePreprocessor;
import dev.edgesmith.core.Outputs;
import java.io.File;
import java.io.InputStream;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The demo's one screen with three panels: classify an image (drawn, gallery or camera), compare two
 * sentences by cosine, and latency (p50 / p90 over 100 runs, runtime and threads). The bundle comes from
 * {@code assets/bundle/} or a folder the user picks; drift reports go to
 * {@code files/drift/reports.jsonl} and, when a URL is set, are POSTed to it.
 */
public final class MainActivity extends Activity {
    private static final int PICK_IMAGE = 1;
    private static final int TAKE_PHOTO = 2;
    private static final int PICK_BUNDLE = 3;
    private static final int THREADS = 2;

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private BundleSession session;
    private TextView status;
    private TextView result;
    private TextView drift;
    private DrawView pad;
    private EditText textA;
    private EditText textB;
    private EditText postUrl;
    private LinearLayout classifyPanel;
    private LinearLayout comparePanel;
    private LinearLayout latencyPanel;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        LinearLayout root = column();
        status = text("Loading the bundle…");
        root.addView(status);
        LinearLayout tabs = row();
        tabs.addView(button("Classify", v -> showPanel(classifyPanel)));
        tabs.addView(button("Compare", v -> showPanel(comparePanel)));
        tabs.addView(button("Latency", v -> showPanel(latencyPanel)));
        tabs.addView(button("Open bundle…", v -> startActivityForResult(
                new Intent(Intent.ACTION_OPEN_DOCUMENT_TREE), PICK_BUNDLE)));
        root.addView(tabs);

        classifyPanel = column();
        pad = new DrawView(this);
        classifyPanel.addView(pad, new LinearLayout.LayoutParams(600, 600));
        LinearLayout imageButtons = row();
        imageButtons.addView(button("Clear", v -> pad.clear()));
        imageButtons.addView(button("Gallery", v -> startActivityForResult(
                new Intent(Intent.ACTION_GET_CONTENT).setType("image/*"), PICK_IMAGE)));
        imageButtons.addView(button("Camera", v -> startActivityForResult(
                new Intent(MediaStore.ACTION_IMAGE_CAPTURE), TAKE_PHOTO)));
        imageButtons.addView(button("Classify", v -> classify()));
        classifyPanel.addView(imageButtons);
        root.addView(classifyPanel);

        comparePanel = column();
        textA = edit("A man is playing a guitar on stage.");
        textB = edit("Someone performs music in front of an audience.");
        comparePanel.addView(textA);
        comparePanel.addView(textB);
        comparePanel.addView(button("Compare", v -> compare()));
        root.addView(comparePanel);

        latencyPanel = column();
        latencyPanel.addView(button("Run 100", v -> latency()));
        root.addView(latencyPanel);

        result = text("");
        root.addView(result);
        postUrl = edit("");
        postUrl.setHint("optional: POST drift reports to http://…/telemetry (edgesmith demo serves one)");
        postUrl.setInputType(InputType.TYPE_TEXT_VARIATION_URI);
        root.addView(postUrl);
        drift = text("");
        root.addView(drift);
        ScrollView scroll = new ScrollView(this);
        scroll.addView(root);
        setContentView(scroll);
        load(new AssetFiles(getAssets(), "bundle"));
    }

    // ------------------------------------------------------------------ bundle

    private void load(BundleFiles files) {
        status.setText("Verifying " + files.describe("edgesmith.json") + " (sha256 of every file)…");
        String url = postUrl.getText().toString().trim();
        worker.execute(() -> {
            try {
                if (session != null) {
                    session.close();
                }
                File reports = new File(new File(getFilesDir(), "drift"), "reports.jsonl");
                session = new BundleSession(files, THREADS, reports, url.isEmpty() ? null : new HttpPostSink(url));
                BundleSession s = session;
                runOnUiThread(() -> {
                    status.setText(s.summary());
                    showPanel(s.isImage() ? classifyPanel : comparePanel);
                    drift.setText("drift reports: " + s.reports);
                });
            } catch (Exception e) {
                session = null;
                runOnUiThread(() -> status.setText("Cannot load the bundle: " + BundleSession.message(e)));
            }
        });
    }

    private void showPanel(View panel) {
        for (View p : new View[] {classifyPanel, comparePanel, latencyPanel}) {
            p.setVisibility(p == panel ? View.VISIBLE : View.GONE);
        }
    }

    // ------------------------------------------------------------------ screens

    private void classify() {
        BundleSession s = session;
        if (s == null || !s.isImage()) {
            result.setText("This bundle takes text: use Compare.");
            return;
        }
        Bitmap small = Bitmap.createScaledBitmap(pad.snapshot(), s.pre.width(), s.pre.height(), true);
        int[] argb = new int[s.pre.width() * s.pre.height()];
        small.getPixels(argb, 0, s.pre.width(), 0, 0, s.pre.width(), s.pre.height());
        int[] hwc = ImagePreprocessor.argbToUint8(argb, s.pre.channels());
        worker.execute(() -> {
            try {
                float[] logits = s.classify(Collections.singletonList(hwc)).get(0);
                List<Outputs.Ranked> top = Outputs.topK(Outputs.softmax(logits), 3, s.manifest.labels());
                show("top-3: " + top, s);
            } catch (Exception e) {
                show("error: " + BundleSession.message(e), s);
            }
        });
    }

    private void compare() {
        BundleSession s = session;
        if (s == null || s.isImage()) {
            result.setText("This bundle takes images: use Classify.");
            return;
        }
        List<String> texts = Arrays.asList(textA.getText().toString(), textB.getText().toString());
        worker.execute(() -> {
            try {
                List<float[]> e = s.embed(texts);
                show(String.format("cosine %.4f (%d and %d tokens)", Outputs.cosine(e.get(0), e.get(1)),
                        s.tok.encode(texts.get(0), 0).length, s.tok.encode(texts.get(1), 0).length), s);
            } catch (Exception e) {
                show("error: " + BundleSession.message(e), s);
            }
        });
    }

    private void latency() {
        BundleSession s = session;
        if (s == null) {
            return;
        }
        result.setText("Running 100 times…");
        worker.execute(() -> {
            try {
                double[] p = s.latency(100);
                show(String.format("%s\np50 %.3f ms, p90 %.3f ms over 100 runs (after 5 warm-up runs)",
                        s.runner.describe(), p[0], p[1]), s);
            } catch (Exception e) {
                show("error: " + BundleSession.message(e), s);
            }
        });
    }

    private void show(String line, BundleSession s) {
        List<java.util.Map<String, Object>> reps = s.monitor.reports();
        String last = reps.isEmpty() ? "none yet (every " + s.monitor.config().window + " predictions)"
                : reps.size() + ", last status " + reps.get(reps.size() - 1).get("status");
        runOnUiThread(() -> {
            result.setText(line);
            drift.setText("drift reports in " + s.reports + ": " + last);
        });
    }

    @Override
    protected void onActivityResult(int request, int code, Intent data) {
        super.onActivityResult(request, code, data);
        if (code != RESULT_OK || data == null) {
            return;
        }
        try {
            if (request == PICK_BUNDLE) {
                Uri tree = data.getData();
                getContentResolver().takePersistableUriPermission(tree, Intent.FLAG_GRANT_READ_URI_PERMISSION);
                load(new TreeFiles(getContentResolver(), tree));
            } else if (request == PICK_IMAGE) {
                try (InputStream in = getContentResolver().openInputStream(data.getData())) {
                    pad.show(BitmapFactory.decodeStream(in));
                }
            } else if (request == TAKE_PHOTO && data.getExtras() != null) {
                pad.show((Bitmap) data.getExtras().get("data"));  // the camera app's thumbnail
            }
        } catch (Exception e) {
            result.setText("error: " + BundleSession.message(e));
        }
    }

    @Override
    protected void onDestroy() {
        worker.execute(() -> {
            if (session != null) {
                session.close();  // flushes the last, partial drift window
            }
        });
        worker.shutdown();
        super.onDestroy();
    }

    // ------------------------------------------------------------------ views

    private LinearLayout column() {
        LinearLayout l = new LinearLayout(this);
        l.setOrientation(LinearLayout.VERTICAL);
        l.setPadding(24, 24, 24, 24);
        return l;
    }

    private LinearLayout row() {
        LinearLayout l = new LinearLayout(this);
        l.setOrientation(LinearLayout.HORIZONTAL);
        return l;
    }

    private TextView text(String s) {
        TextView t = new TextView(this);
        t.setText(s);
        t.setTextIsSelectable(true);
        return t;
    }

    private EditText edit(String s) {
        EditText e = new EditText(this);
        e.setText(s);
        return e;
    }

    private Button button(String label, View.OnClickListener onClick) {
        Button b = new Button(this);
        b.setText(label);
        b.setAllCaps(false);
        b.setOnClickListener(onClick);
        return b;
    }
}
