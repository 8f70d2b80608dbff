package dev.edgesmith.demo;

import dev.edgesmith.core.DriftMonitor;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * POSTs each drift report (one JSON object) to a URL, off the UI thread; a failure is logged and the
 * report stays in the JSON-lines file. {@code edgesmith demo} serves such an endpoint at /telemetry.
 */
final class HttpPostSink implements DriftMonitor.Sink {
    private final String url;
    private final ExecutorService io = Executors.newSingleThreadExecutor();

    HttpPostSink(String url) {
        this.url = url;
    }

    @Override
    public void accept(Map<String, Object> report, String jsonLine) {
        io.execute(() -> {
            try {
                HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
                c.setRequestMethod("POST");
                c.setDoOutput(true);
                c.setConnectTimeout(5000);
                c.setReadTimeout(5000);
                c.setRequestProperty("Content-Type", "application/json");
                try (OutputStream out = c.getOutputStream()) {
                    out.write(jsonLine.getBytes(StandardCharsets.UTF_8));
                }
                int code = c.getResponseCode();
                if (code >= 300) {
                    android.util.Log.w("edgesmith", "drift report POST to " + url + ": HTTP " + code);
                }
                c.disconnect();
            } catch (Exception e) {
                android.util.Log.w("edgesmith", "drift report POST to " + url + " failed: " + e);
            }
        });
    }
}
