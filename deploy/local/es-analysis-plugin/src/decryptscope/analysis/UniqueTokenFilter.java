package decryptscope.analysis;

import java.io.IOException;
import java.util.Arrays;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute;

/**
 * Passes each distinct term once per stream (or, with {@code onlyOnSamePosition}, once per
 * position), as Elasticsearch's own {@code unique} filter does.
 */
final class UniqueTokenFilter extends TokenFilter {

    private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
    private final PositionIncrementAttribute position =
        addAttribute(PositionIncrementAttribute.class);
    private final CharArraySet seen = new CharArraySet(8, false);
    private final boolean onlyOnSamePosition;

    UniqueTokenFilter(TokenStream input, boolean onlyOnSamePosition) {
        super(input);
        this.onlyOnSamePosition = onlyOnSamePosition;
    }

    @Override
    public boolean incrementToken() throws IOException {
        while (input.incrementToken()) {
            char[] buffer = term.buffer();
            int length = term.length();
            boolean duplicate;
            if (onlyOnSamePosition) {
                int increment = position.getPositionIncrement();
                if (increment > 0) {
                    seen.clear();
                }
                duplicate = increment == 0 && seen.contains(buffer, 0, length);
            } else {
                duplicate = seen.contains(buffer, 0, length);
            }
            seen.add(Arrays.copyOf(buffer, length));
            if (!duplicate) {
                return true;
            }
        }
        return false;
    }

    @Override
    public void reset() throws IOException {
        super.reset();
        seen.clear();
    }
}
