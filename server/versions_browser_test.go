package server

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserVersions drives answer versions in Chromium on the test double: regenerate an answer and
// browse back to the first one with the switcher; edit the first question, which starts a new branch,
// then go back to the original question and find the answer chosen there before (the older one, not the
// newest), and send from there after a reload: the conversation goes on from the version shown. With
// SMOLCHAT_SCREENSHOTS=1 it saves the switcher, light and dark, desktop and phone.
func TestBrowserVersions(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := startBrowser(t)
	b.do("open the page", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt"))
	done := `!document.querySelector(".msg.streaming") && document.querySelectorAll(".msg.assistant .stats").length === `
	f.script("", "The first answer.")
	b.send("Tell me something")
	b.wait("the first answer", done+"1", 10*time.Second)
	b.wait("settled", settled, 5*time.Second)
	f.script("", "Another answer, regenerated.")
	b.do("regenerate", chromedp.Click("#messages > article.msg.assistant:last-of-type .regen"))
	b.wait("the second version", `(document.querySelector(".msg.assistant .version-count")?.textContent || "") === "2/2"`, 10*time.Second)
	b.wait("settled", settled, 5*time.Second)
	b.do("previous version", chromedp.Click(".msg.assistant .version-prev"))
	b.wait("the first version", `document.querySelector(".msg.assistant .version-count")?.textContent === "1/2" &&
		document.querySelector(".msg.assistant .content").textContent.includes("The first answer.")`, 5*time.Second)
	b.wait("settled", settled, 5*time.Second)
	b.shotEach("versions")

	// Edit the question: a new branch; the old question keeps its answers.
	f.script("", "An answer to the edit.")
	b.do("edit", chromedp.Click(".msg.user .tool:not(.version-prev):not(.version-next)"), chromedp.WaitVisible(".edit-form textarea"))
	b.wait("settled", settled, 5*time.Second)
	b.do("save the edit", chromedp.Evaluate[chromedp.Void](`document.querySelector(".edit-form textarea").value = "Tell me something else"`),
		chromedp.Click(".edit-form button[type=submit]"))
	b.wait("the edit's answer", done+"1 && document.querySelector(\".msg.assistant .content\").textContent.includes(\"An answer to the edit.\")", 10*time.Second)
	b.wait("settled", settled, 5*time.Second)
	if got := eval[string](b, `document.querySelector(".msg.user .version-count")?.textContent`); got != "2/2" {
		t.Fatalf("the edited question's switcher says %q, want 2/2", got)
	}
	b.do("the original question", chromedp.Click(".msg.user .version-prev"))
	// The branch goes on below the one chosen as it was last shown: the first answer, chosen there.
	b.wait("the original branch", `document.querySelector(".msg.user .bubble")?.textContent === "Tell me something" &&
		document.querySelector(".msg.assistant .content").textContent.includes("The first answer.") &&
		document.querySelector(".msg.assistant .version-count").textContent === "1/2"`, 5*time.Second)

	// The conversation goes on from the branch shown, after a reload too.
	f.script("", "")
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible("#prompt"))
	b.send("And then?")
	b.wait("the next answer", done+"2", 10*time.Second)
	r := f.lastRequest()
	if len(r.Messages) != 3 || r.Messages[0].Content != "Tell me something" || r.Messages[1].Content != "The first answer." {
		t.Fatalf("the next request did not follow the branch shown: %+v\n%s", r.Messages, b.messagesTail())
	}
	b.noErrors("answer versions")
}
