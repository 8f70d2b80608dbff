// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.provider;

public final class MediaStore {
 public static final String ACTION_IMAGE_CAPTURE = "android.media.action.IMAGE_CAPTURE";
}
