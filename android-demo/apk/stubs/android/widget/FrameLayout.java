// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.widget;

public class FrameLayout extends android.view.ViewGroup {
 public FrameLayout(android.content.Context context) { super(context); }
}
