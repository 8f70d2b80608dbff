package dev.edgesmith.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Where a bundle's files live: a folder on disk ({@link Folder}) or, in the app, the APK's
 * assets. Paths are the manifest's, relative and '/'-separated.
 */
public interface BundleFiles {
    /** Opens a file; throws {@link IOException} when it is missing. */
    InputStream open(String path) throws IOException;

    /** Whether the file exists (a plain file, not a folder). */
    boolean isFile(String path);

    /** Every file below {@code folder}, recursively, as bundle-relative paths; empty when none. */
    List<String> listFiles(String folder);

    /** A description for messages ({@code /sdcard/bundle/edgesmith.json}). */
    String describe(String path);

    /** Checks that {@code path} does not leave the bundle through a symlink; a no-op where none can exist. */
    default void checkInside(String path, String manifest) {
    }

    /** The whole file as bytes. */
    default byte[] readAll(String path) throws IOException {
        try (InputStream in = open(path)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    /** The whole file as UTF-8 text. */
    default String readText(String path) throws IOException {
        return new String(readAll(path), StandardCharsets.UTF_8);
    }

    /** A bundle folder on disk. */
    final class Folder implements BundleFiles {
        private final File root;

        public Folder(File root) {
            this.root = root;
        }

        public File root() {
            return root;
        }

        public File file(String path) {
            return new File(root, path.replace('/', File.separatorChar));
        }

        @Override
        public InputStream open(String path) throws IOException {
            return new FileInputStream(file(path));
        }

        @Override
        public boolean isFile(String path) {
            return file(path).isFile();
        }

        @Override
        public List<String> listFiles(String folder) {
            List<String> out = new ArrayList<>();
            walk(file(folder), folder, out);
            Collections.sort(out);
            return out;
        }

        private static void walk(File dir, String rel, List<String> out) {
            File[] kids = dir.listFiles();
            if (kids == null) {
                return;
            }
            for (File k : kids) {
                String r = rel + "/" + k.getName();
                if (k.isDirectory()) {
                    walk(k, r, out);
                } else if (k.isFile()) {
                    out.add(r);
                }
            }
        }

        @Override
        public String describe(String path) {
            return file(path).getPath();
        }

        @Override
        public void checkInside(String path, String manifest) {
            try {
                String base = root.getCanonicalPath() + File.separator;
                File f = file(path);
                String real = f.getCanonicalPath();
                if (f.exists() && !real.startsWith(base)) {
                    throw new BundleException(f.getPath() + ": a symlink out of the bundle (to " + real
                            + "); refusing to load");
                }
            } catch (IOException e) {
                throw new BundleException(describe(path) + ": cannot resolve (" + e.getMessage() + ")");
            }
        }
    }
}
