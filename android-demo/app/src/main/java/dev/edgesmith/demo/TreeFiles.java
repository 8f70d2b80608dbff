package dev.edgesmith.demo;

import android.content.ContentResolver;
import android.database.Cursor;
import android.net.Uri;
import android.provider.DocumentsContract;
import dev.edgesmith.core.BundleFiles;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A bundle folder the user picked (Storage Access Framework tree URI). Every file below it is indexed
 * once by its bundle-relative path; the manifest's checks decide which of them are read.
 */
final class TreeFiles implements BundleFiles {
    private final ContentResolver resolver;
    private final Uri tree;
    private final Map<String, Uri> files = new TreeMap<>();

    TreeFiles(ContentResolver resolver, Uri tree) {
        this.resolver = resolver;
        this.tree = tree;
        index(DocumentsContract.getTreeDocumentId(tree), "");
    }

    private void index(String documentId, String prefix) {
        Uri children = DocumentsContract.buildChildDocumentsUriUsingTree(tree, documentId);
        String[] cols = {DocumentsContract.Document.COLUMN_DOCUMENT_ID, DocumentsContract.Document.COLUMN_DISPLAY_NAME,
            DocumentsContract.Document.COLUMN_MIME_TYPE};
        try (Cursor c = resolver.query(children, cols, null, null, null)) {
            while (c != null && c.moveToNext()) {
                String id = c.getString(0);
                String rel = prefix.isEmpty() ? c.getString(1) : prefix + "/" + c.getString(1);
                if (DocumentsContract.Document.MIME_TYPE_DIR.equals(c.getString(2))) {
                    index(id, rel);
                } else {
                    files.put(rel, DocumentsContract.buildDocumentUriUsingTree(tree, id));
                }
            }
        }
    }

    @Override
    public InputStream open(String path) throws IOException {
        Uri uri = files.get(path);
        if (uri == null) {
            throw new FileNotFoundException(describe(path));
        }
        InputStream in = resolver.openInputStream(uri);
        if (in == null) {
            throw new FileNotFoundException(describe(path));
        }
        return in;
    }

    @Override
    public boolean isFile(String path) {
        return files.containsKey(path);
    }

    @Override
    public List<String> listFiles(String folder) {
        List<String> out = new ArrayList<>();
        for (String f : files.keySet()) {
            if (f.startsWith(folder + "/")) {
                out.add(f);
            }
        }
        Collections.sort(out);
        return out;
    }

    @Override
    public String describe(String path) {
        return tree.getLastPathSegment() + "/" + path;
    }
}
