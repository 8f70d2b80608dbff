// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.text;

public interface InputType {
 int TYPE_TEXT_VARIATION_URI = 16;
}
