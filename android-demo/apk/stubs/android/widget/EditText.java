// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.widget;

public class EditText extends TextView {
 public EditText(android.content.Context context) { super(context); }
 @Override public android.text.Editable getText() { throw new RuntimeException("stub"); }
}
