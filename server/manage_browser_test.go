package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserManageChats drives the sidebar in Chromium on the test double: search by a word of an
// answer and see the match marked, rename a chat in place (the page's title follows), import a chat
// exported as JSON (the page opens it), and delete a chat. With SMOLCHAT_SCREENSHOTS=1 it saves the
// search, light and dark, desktop and phone.
func TestBrowserManageChats(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := startBrowser(t)
	b.do("open the page", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt"))
	done := `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`
	for _, q := range []string{"Plan a trip to Lisbon", "Recipe for lemon tart"} {
		b.do("new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
		f.script("", "Here is an answer to: "+q+", with its details.")
		b.send(q)
		b.wait("the answer", done, 10*time.Second)
	}

	// Search: a word of an answer finds its chat, with the words around it.
	b.do("search", chromedp.SendKeys("#search", "lisb"))
	b.wait("the search result", `document.querySelectorAll("#conversation-list li.conv").length === 1 &&
		document.querySelector("#conversation-list .snippet mark")?.textContent.toLowerCase() === "lisbon"`, 5*time.Second)
	b.wait("settled", settled, 5*time.Second)
	b.shotEach("search")
	if b.shots != "" { // on a phone the results are in the drawer
		b.do("phone drawer", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Evaluate[chromedp.Void](`document.querySelector("#open-sidebar").click()`), chromedp.Sleep(300*time.Millisecond))
		b.shot("search-phone.png")
		b.do("close the drawer", chromedp.Evaluate[chromedp.Void](`document.querySelector("#close-sidebar").click()`), chromedp.EmulateViewport(1280, 800))
	}
	b.do("clear the search", chromedp.Evaluate[chromedp.Void](`const s = document.querySelector("#search"); s.value = ""; s.dispatchEvent(new Event("search", {bubbles: true}))`))
	b.wait("every chat again", `document.querySelectorAll("#conversation-list li.conv").length === 2`, 5*time.Second)
	b.wait("settled", settled, 5*time.Second)

	// Rename the chat shown: the sidebar and the page's title follow.
	b.do("rename", chromedp.Click("#conversation-list li.current .rename"), chromedp.WaitVisible(".rename-form input"))
	b.wait("settled", settled, 5*time.Second)
	b.do("type the title", chromedp.Evaluate[chromedp.Void](`document.querySelector(".rename-form input").value = ""`),
		chromedp.SendKeys(".rename-form input", "Tarts"), chromedp.SendKeys(".rename-form input", kb.Enter))
	b.wait("renamed", `document.querySelector("#conversation-list li.current a")?.textContent === "Tarts" &&
		document.querySelector("#chat-title").textContent === "Tarts"`, 5*time.Second)
	b.wait("settled", settled, 5*time.Second)

	// Import: the chat exported as JSON comes back as a new chat, and the page opens it.
	exported := newBrowser(t, base).get("/c/" + eval[string](b, `document.querySelector("#conversation-id").value`) + "/export/json")
	file := filepath.Join(t.TempDir(), "tarts.json")
	if err := os.WriteFile(file, []byte(exported), 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("import", chromedp.SetUploadFiles("#import-file", []string{file}, chromedp.NodeReady))
	b.wait("the imported chat", `document.querySelectorAll("#conversation-list li.conv").length === 3 &&
		document.querySelector("#chat-title")?.textContent === "Tarts" && location.pathname.startsWith("/c/") &&
		(document.querySelector(".msg.assistant .content")?.textContent || "").includes("lemon tart")`, 10*time.Second)

	// Delete the imported chat (its confirmation answered yes).
	b.wait("settled", settled, 5*time.Second)
	b.do("delete", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`), chromedp.Click("#conversation-list li.current .delete"))
	b.wait("deleted", `location.pathname === "/" && document.querySelectorAll("#conversation-list li.conv").length === 2`, 10*time.Second)
	b.noErrors("managing chats")
}
