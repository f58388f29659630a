package server

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestAnswerVersions: a regenerated answer keeps the earlier one as a version; the switcher shows
// which of how many; showing the earlier one makes the conversation go on from it, and the exports
// write the branch shown (the JSON one the whole tree too); a page that shows another branch than
// the one stored cannot append to it.
func TestAnswerVersions(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	ctx := context.Background()
	f.script("", "Answer A")
	conv, sid, _ := b.send("", "question", false)
	b.stream(sid, nil)
	f.script("", "Answer B")
	_, body := b.do("POST", "/c/"+conv+"/regenerate", nil)
	evs := b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	if last := lastEvent(t, evs); !strings.Contains(last.Data, "Answer B") || !strings.Contains(last.Data, `aria-label="Version 2 of 2">2/2<`) {
		t.Fatalf("the regenerated answer's last event: %s", last.Data)
	}
	msgs, _ := s.store.Messages(ctx, conv)
	a, bID := msgs[1].Versions[0], msgs[1].ID
	if page := b.get("/c/" + conv); !strings.Contains(page, `hx-post="/c/`+conv+`/m/`+itoa(a)+`/show"`) || !strings.Contains(page, ">2/2<") {
		t.Fatal("the page offers no way back to the first answer")
	}

	// Show the first answer: the branch has it, and the next message follows it.
	resp, body := b.do("POST", "/c/"+conv+"/m/"+itoa(a)+"/show", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Answer A") || strings.Contains(body, "Answer B") || !strings.Contains(body, ">1/2<") ||
		!strings.Contains(body, `id="context-meter"`) {
		t.Fatalf("show version: %d %s", resp.StatusCode, body)
	}
	md := b.get("/c/" + conv + "/export/md")
	if !strings.Contains(md, "Answer A") || strings.Contains(md, "Answer B") {
		t.Fatalf("the Markdown export does not write the branch shown:\n%s", md)
	}
	var exp exportedConversation
	if err := json.Unmarshal([]byte(b.get("/c/"+conv+"/export/json")), &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Messages) != 2 || exp.Messages[1].Content != "Answer A" || len(exp.AllMessages) != 3 || exp.AllMessages[2].ParentID != exp.Messages[0].ID {
		t.Fatalf("JSON export: %+v", exp)
	}

	// A page still showing answer B is stale now; one showing A goes on from A.
	if resp, body := b.do("POST", "/chat", url.Values{"content": {"next"}, "conversation": {conv}, "shown": {itoa(bID)}}); resp.StatusCode != 409 {
		t.Fatalf("a message from a page showing the other version: %d %s", resp.StatusCode, body)
	}
	f.script("", "")
	_, sid, _ = b.send(conv, "next", false)
	b.stream(sid, nil)
	if r := f.lastRequest(); len(r.Messages) != 3 || r.Messages[1].Content != "Answer A" {
		t.Fatalf("the conversation did not go on from the version shown: %+v", r.Messages)
	}
	// Switching is refused while an answer streams.
	_, _, _ = b.send(conv, "slow", false)
	if resp, _ := b.do("POST", "/c/"+conv+"/m/"+itoa(bID)+"/show", nil); resp.StatusCode != 409 {
		t.Fatalf("switching versions during an answer: %d, want 409", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/c/"+conv+"/m/999999/show", nil); resp.StatusCode != 404 {
		t.Fatalf("showing a missing message: %d, want 404", resp.StatusCode)
	}
}
