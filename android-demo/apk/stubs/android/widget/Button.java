// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.widget;

public class Button extends TextView {
 public Button(android.content.Context context) { super(context); }
}
