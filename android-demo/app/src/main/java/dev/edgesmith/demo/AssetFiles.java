package dev.edgesmith.demo;

import android.content.res.AssetManager;
import dev.edgesmith.core.BundleFiles;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** A bundle shipped in the APK's assets ({@code assets/bundle/}). Assets hold no symlinks. */
final class AssetFiles implements BundleFiles {
    private final AssetManager assets;
    private final String base;

    AssetFiles(AssetManager assets, String base) {
        this.assets = assets;
        this.base = base;
    }

    private String at(String path) {
        return path.isEmpty() ? base : base + "/" + path;
    }

    @Override
    public InputStream open(String path) throws IOException {
        return assets.open(at(path), AssetManager.ACCESS_STREAMING);
    }

    @Override
    public boolean isFile(String path) {
        try (InputStream in = assets.open(at(path))) {
            return in != null;
        } catch (IOException e) {
            return false;  // missing, or a folder
        }
    }

    @Override
    public List<String> listFiles(String folder) {
        List<String> out = new ArrayList<>();
        walk(folder, out);
        Collections.sort(out);
        return out;
    }

    private void walk(String folder, List<String> out) {
        String[] names;
        try {
            names = assets.list(at(folder));
        } catch (IOException e) {
            return;
        }
        if (names == null) {
            return;
        }
        for (String n : names) {
            String rel = folder.isEmpty() ? n : folder + "/" + n;
            if (isFile(rel)) {
                out.add(rel);
            } else {
                walk(rel, out);
            }
        }
    }

    @Override
    public String describe(String path) {
        return "assets/" + at(path);
    }
}
