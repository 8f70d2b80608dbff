// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.widget;

public class ScrollView extends FrameLayout {
 public ScrollView(android.content.Context context) { super(context); }
}
