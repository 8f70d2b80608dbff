package dev.edgesmith.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Verification of real bundles (from the golden files) and refusal of damaged ones, worded as in Python. */
public class ManifestTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    private File copy(String kind) throws IOException {
        Map<String, Object> g = Golden.load(kind);
        Path src = new File((String) g.get("bundle")).toPath();
        Path dst = tmp.newFolder(kind).toPath();
        try (Stream<Path> walk = Files.walk(src)) {
            for (Path p : (Iterable<Path>) walk::iterator) {
                Path to = dst.resolve(src.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(to);
                } else {
                    Files.copy(p, to, StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        return dst.toFile();
    }

    private static String refused(File root) {
        try {
            Manifest.read(new BundleFiles.Folder(root), true);
        } catch (BundleException e) {
            assertTrue("one line: " + e.getMessage(), !e.getMessage().contains("\n"));
            return e.getMessage();
        }
        fail("loaded a bundle it should refuse: " + root);
        return null;
    }

    private static void editManifest(File root, String from, String to) throws IOException {
        Path m = new File(root, Manifest.MANIFEST).toPath();
        String text = new String(Files.readAllBytes(m), StandardCharsets.UTF_8);
        assertTrue("manifest holds " + from, text.contains(from));
        Files.write(m, text.replace(from, to).getBytes(StandardCharsets.UTF_8));
    }

    @Test
    public void realBundlesVerifyAndPickTheirFormat() throws IOException {
        for (String kind : new String[] {"image", "text"}) {
            Map<String, Object> g = Golden.load(kind);
            Manifest m = Golden.manifest(g);
            assertEquals(1, m.schemaVersion());
            assertEquals(kind, m.kind());
            assertEquals(g.get("format"), m.pickFormat(List.of("onnxruntime", "litert")));
            assertEquals(g.get("meaning"), m.outputMeaning());
        }
        Manifest image = Golden.manifest(Golden.load("image"));
        assertEquals(Arrays.asList("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"), image.labels());
        assertEquals(List.of("pixel_values"), image.inputNames());
        try {
            image.pickFormat(List.of("executorch"));
            fail("picked a format without its runtime");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("the bundle has: onnxruntime"));
        }
    }

    @Test
    public void tamperedFileIsRefused() throws IOException {
        File root = copy("image");
        File f = new File(root, "onnx/model.onnx");
        byte[] data = Files.readAllBytes(f.toPath());
        data[data.length / 2] ^= 0x01;  // one bit, same size
        Files.write(f.toPath(), data);
        String msg = refused(root);
        assertTrue(msg, msg.startsWith(f.getPath() + ": size or sha256 differs") && msg.contains("tampered"));
    }

    @Test
    public void missingFileIsRefused() throws IOException {
        File root = copy("image");
        File f = new File(root, "onnx/model.onnx");
        assertTrue(f.delete());
        assertTrue(refused(root).startsWith(f.getPath() + ": missing from the bundle"));
    }

    @Test
    public void pathsLeavingTheBundleAreRefused() throws IOException {
        for (String bad : new String[] {"../x.onnx", "/etc/passwd", "onnx/../../x.onnx", "C:/x.onnx"}) {
            File root = copy("image");
            editManifest(root, "\"path\": \"onnx/model.onnx\"", "\"path\": \"" + bad + "\"");
            String msg = refused(root);
            assertTrue(msg, msg.contains("'" + bad + "' leaves the bundle"));
            tmp.delete();
            tmp.create();
        }
    }

    @Test
    public void symlinkOutOfTheBundleIsRefused() throws IOException {
        File root = copy("image");
        File outside = tmp.newFile("elsewhere.onnx");
        Path model = new File(root, "onnx/model.onnx").toPath();
        Files.copy(model, outside.toPath(), StandardCopyOption.REPLACE_EXISTING);  // same bytes, same sha256
        Files.delete(model);
        Files.createSymbolicLink(model, outside.toPath());
        assertTrue(refused(root).contains("a symlink out of the bundle"));
    }

    @Test
    public void unknownSchemaVersionsAreRefused() throws IOException {
        String[][] cases = {{"999", "newer than this app reads (1); update the app"},
            {"0", "schema_version 0 is unknown"}, {"\"1\"", "schema_version '1' is unknown"},
            {"null", "schema_version None is unknown"}};
        for (String[] c : cases) {
            File root = copy("image");
            editManifest(root, "\"schema_version\": 1", "\"schema_version\": " + c[0]);
            String msg = refused(root);
            assertTrue(msg, msg.contains(c[1]));
            tmp.delete();
            tmp.create();
        }
    }

    @Test
    public void unhashedTokenizerFileIsRefused() throws IOException {
        File root = copy("text");
        File extra = new File(root, "tokenizer/added_tokens.json");
        Files.write(extra.toPath(), "{\"[EVIL]\": 5}".getBytes(StandardCharsets.UTF_8));
        String msg = refused(root);
        assertTrue(msg, msg.startsWith(extra.getPath() + ": not listed in edgesmith.json"));
    }

    @Test
    public void handMadeBundleVerifies() throws Exception {
        File root = tmp.newFolder("hand");
        File model = new File(root, "onnx/model.onnx");
        assertTrue(model.getParentFile().mkdirs());
        byte[] bytes = "not really a model".getBytes(StandardCharsets.UTF_8);
        Files.write(model.toPath(), bytes);
        String sha = Manifest.hex(MessageDigest.getInstance("SHA-256").digest(bytes));
        String manifest = "{\"schema_version\": 1, \"preprocessing\": {\"kind\": \"image\"}, "
                + "\"formats\": {\"onnx\": {\"path\": \"onnx/model.onnx\", \"runtime\": \"onnxruntime\"}},"
                + "\"checksums\": [{\"path\": \"onnx/model.onnx\", \"size\": " + bytes.length + ", \"sha256\": \""
                + sha + "\"}]}";
        Files.write(new File(root, Manifest.MANIFEST).toPath(), manifest.getBytes(StandardCharsets.UTF_8));
        assertEquals("onnx", Manifest.read(new BundleFiles.Folder(root), true).pickFormat(List.of("onnxruntime")));
        Files.write(model.toPath(), "not really a modem".getBytes(StandardCharsets.UTF_8));
        assertTrue(refused(root).contains("size or sha256 differs"));
        Files.write(new File(root, Manifest.MANIFEST).toPath(), "{not json".getBytes(StandardCharsets.UTF_8));
        assertTrue(refused(root).contains("not valid JSON"));
    }
}
