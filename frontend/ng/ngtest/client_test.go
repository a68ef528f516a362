package ngtest

import "testing"

func TestResultOfFindsTheResultOfAReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dict, want string }{
		{"d6:result2:oke", "ok"},
		{"d7:createdi17e11:last signali0e6:result2:ok4:tagsd1:ad3:tag1:aee6:totalsdee", "ok"},
		{"d12:error-reason3:bad6:result5:errore", "error"},
		{"d3:sdp13:6:result2:no!6:result4:ponge", "pong"},
		{"d3:abcld1:xi1eel1:yeee", ""},
		{"d3:sdp99:short", ""},
		{"l6:result2:oke", ""},
		{"", ""},
	} {
		if got := ResultOf([]byte(tc.dict)); got != tc.want {
			t.Errorf("ResultOf(%q) = %q, want %q", tc.dict, got, tc.want)
		}
	}
}
