// smolchat's page behaviour. The server renders everything and htmx swaps it in; this file adds what
// HTML alone cannot do: Enter to send, the Stop button, collapsing the reasoning when the answer starts,
// following the stream, copy buttons and the sidebar drawer on small screens. It is loaded as a file
// because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || "";

  function init() {
    const form = $("#composer");
    const prompt = $("#prompt");
    const messages = $("#messages");
    const scroller = $("#scroller");
    if (!form || !prompt || !messages || !scroller) return;

    // --- Composer -------------------------------------------------------------------------------
    const autosize = () => {
      prompt.style.height = "auto";
      prompt.style.height = Math.min(prompt.scrollHeight, window.innerHeight * 0.4) + "px";
    };
    prompt.addEventListener("input", autosize);

    const attachments = $("#attachments");
    const empty = () => prompt.value.trim() === "" && !attachments.querySelector(".attachment");
    prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (!busy() && !empty()) form.requestSubmit();
      }
    });
    document.body.addEventListener("htmx:beforeRequest", (e) => {
      // Nothing to send, or an answer is still streaming (the server would refuse it).
      if (e.detail.elt === form && (busy() || empty())) e.preventDefault();
    });

    // --- Attachments ------------------------------------------------------------------------------
    // Each file (from the button, a drop or a paste) goes to /attach, which reads its text and answers
    // with a chip (name, token count, the text in a hidden field) or an error notice; the chips'
    // fields go with the message. The server writes both, escaped: a file's name is never markup.
    async function attachFile(file) {
      const data = new FormData();
      data.append("file", file, file.name);
      // The chat's settings, which the file's token count depends on (the template's reasoning mode,
      // the system prompt, the answer's room).
      for (const [k, v] of new FormData(form)) {
        if (k !== "content" && k !== "attachment" && k !== "attachment_name") data.append(k, v);
      }
      let resp;
      try {
        resp = await fetch("/attach", { method: "POST", body: data, credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf(), "HX-Request": "true" } });
      } catch (err) {
        serverLost();
        return;
      }
      const html = await resp.text();
      if (!resp.ok) {
        const text = new DOMParser().parseFromString(html, "text/html").body.textContent.trim();
        notice(text || "The file could not be attached (" + resp.status + ").");
        return;
      }
      attachments.insertAdjacentHTML("beforeend", html);
    }
    const attachAll = (files) => { for (const f of files) attachFile(f); };
    const picker = $("#attach-file");
    $("#attach").addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => { attachAll(picker.files); picker.value = ""; });
    attachments.addEventListener("click", (e) => {
      const x = e.target.closest(".attachment-remove");
      if (x) { x.closest(".attachment").remove(); prompt.focus(); }
    });
    prompt.addEventListener("paste", (e) => {
      const files = e.clipboardData && e.clipboardData.files;
      if (files && files.length) { e.preventDefault(); attachAll(files); }
    });
    form.addEventListener("dragover", (e) => {
      if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) { e.preventDefault(); form.classList.add("dropping"); }
    });
    form.addEventListener("dragleave", (e) => { if (!form.contains(e.relatedTarget)) form.classList.remove("dropping"); });
    form.addEventListener("drop", (e) => {
      form.classList.remove("dropping");
      if (e.dataTransfer && e.dataTransfer.files.length) { e.preventDefault(); attachAll(e.dataTransfer.files); }
    });

    // The page says which turn it shows last, so that a message typed in a stale tab (the chat moved on
    // in another window) is refused rather than appended after turns this page never showed.
    document.body.addEventListener("htmx:configRequest", (e) => {
      if (e.detail.elt !== form) return;
      const shown = messages.querySelectorAll('article.msg[id^="m-"]');
      e.detail.parameters["shown"] = shown.length ? shown[shown.length - 1].id.slice(2) : "0";
    });

    document.body.addEventListener("htmx:afterRequest", (e) => {
      if (e.detail.elt === form && e.detail.successful) {
        prompt.value = "";
        attachments.replaceChildren();
        autosize();
        prompt.focus();
      }
    });
    // --- Server reachability ------------------------------------------------------------------------
    // A request that cannot reach the server turns the status pill red and says so once; the page then
    // asks /health every few seconds, and when the server answers again the pill and the notice go back.
    let lost = null; // the notice, while the server cannot be reached
    function serverLost() {
      const pill = $("#model-status");
      if (pill) pill.classList.add("unreachable");
      if (lost) return;
      lost = notice("Cannot reach smolchat. Is the server still running? This notice goes when it answers again.");
      const poll = () => fetch("/health", { cache: "no-store", credentials: "same-origin" })
        .then(serverBack, () => setTimeout(poll, 3000));
      setTimeout(poll, 3000);
    }
    function serverBack() {
      const pill = $("#model-status");
      if (pill) pill.classList.remove("unreachable");
      if (lost) lost.remove();
      lost = null;
    }
    document.body.addEventListener("htmx:sendError", serverLost);
    // An answer's event stream that breaks while its placeholder is still on the page (a finished or
    // failed answer replaces the placeholder, which closes its stream first).
    document.body.addEventListener("htmx:sseError", (e) => {
      if (e.target && e.target.isConnected && e.target.classList.contains("streaming")) serverLost();
    });

    // --- Streaming state: Stop button, follow the answer ------------------------------------------
    const stop = $("#stop");
    const send = $("#send");
    const streaming = () => $(".msg.streaming", messages);
    function busy() { return !!streaming(); }
    function updateBusy() {
      const on = busy();
      stop.hidden = !on;
      send.hidden = on;
      form.classList.toggle("busy", on);
    }
    new MutationObserver(updateBusy).observe(messages, { childList: true });
    updateBusy();

    function stopAnswer() {
      const s = streaming();
      if (!s) return;
      fetch("/stream/" + encodeURIComponent(s.dataset.stream) + "/cancel", {
        method: "POST",
        headers: { "X-CSRF-Token": csrf() },
        credentials: "same-origin",
      }).catch(() => notice("Could not stop the answer."));
    }
    stop.addEventListener("click", stopAnswer);

    let follow = true;
    scroller.addEventListener("scroll", () => {
      follow = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    }, { passive: true });
    const toBottom = () => { scroller.scrollTop = scroller.scrollHeight; };

    document.body.addEventListener("htmx:sseMessage", (e) => {
      const type = e.detail && e.detail.type;
      const article = e.target.closest && e.target.closest(".msg");
      if (type && type.startsWith("answer-") && article && !article.dataset.answering) {
        // The answer started: fold the reasoning away, as the reader now wants the answer.
        article.dataset.answering = "1";
        const details = $("details.thinking", article);
        if (details) {
          details.open = false;
          const summary = $("summary", details);
          if (summary) summary.textContent = "Thought process";
        }
      }
      if (follow) toBottom();
    });
    document.body.addEventListener("htmx:afterSwap", (e) => {
      if (e.detail.target === messages || messages.contains(e.detail.target)) {
        if (e.detail.elt === form || follow) toBottom();
      }
    });

    // --- Settings panel ----------------------------------------------------------------------------
    // The panel is part of the composer's form (its fields go with every message); the server swaps it
    // whole after a preset or defaults change, so the toggle is found by delegation.
    const panel = () => $("#settings-panel");
    function togglePanel(on) {
      const p = panel();
      const t = $("#settings-toggle");
      if (!p || !t) return;
      p.hidden = !on;
      t.setAttribute("aria-expanded", on ? "true" : "false");
      if (on) ($("#set-system") || {}).focus?.();
    }
    document.body.addEventListener("click", (e) => {
      if (e.target.closest("#settings-toggle")) togglePanel(panel().hidden);
    });
    // Enter in a settings field would submit the form, sending the message: it only commits the field
    // (the browser still fires its change event, which saves it).
    form.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && e.target.matches(".settings-panel input")) e.preventDefault();
    });

    // --- Keyboard ----------------------------------------------------------------------------------
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        if (panel() && !panel().hidden) {
          togglePanel(false);
        } else if (document.body.classList.contains("sidebar-open")) {
          toggleSidebar(false);
        } else if (busy()) {
          e.preventDefault();
          stopAnswer();
        }
      }
    });

    // --- Copy buttons, code bars, formulas ------------------------------------------------------
    document.body.addEventListener("click", (e) => {
      const btn = e.target.closest("button.copy, button.copy-code");
      if (!btn) return;
      const content = btn.closest(".msg").querySelector(".content");
      const text = btn.classList.contains("copy-code")
        ? (btn.closest(".code-block") || btn.parentElement).querySelector("code").textContent // innerText doubles chroma's line breaks
        : content ? answerText(content) : "";
      navigator.clipboard.writeText(text).then(() => {
        btn.classList.add("copied");
        setTimeout(() => btn.classList.remove("copied"), 1200);
      }, () => notice("The browser refused to copy."));
    });
    // An answer as text to copy: its formulas as their TeX between $ or $$ (KaTeX's rendering would
    // give each twice, as glyphs and as MathML), its code as written, without the code blocks' bars. innerText needs a laid
    // out element for its line breaks, so the copy is laid out off screen for a moment.
    function answerText(content) {
      const clone = content.cloneNode(true);
      clone.querySelectorAll(".math").forEach((m) => {
        const tex = m.querySelector('annotation[encoding="application/x-tex"]');
        const src = (tex ? tex.textContent : m.textContent).trim();
        const fence = m.classList.contains("math-display") ? "$$" : "$";
        m.replaceWith(document.createTextNode(fence + src + fence));
      });
      clone.querySelectorAll(".code-head").forEach((h) => h.remove());
      clone.querySelectorAll("pre").forEach((pre) => { // plain text: chroma's line spans double innerText's breaks
        const plain = document.createElement("pre");
        plain.textContent = pre.textContent;
        pre.replaceWith(plain);
      });
      clone.style.position = "fixed";
      clone.style.left = "-10000px";
      clone.style.width = content.offsetWidth + "px";
      document.body.appendChild(clone);
      const text = clone.innerText;
      clone.remove();
      return text;
    }
    // A code block's bar (server-rendered, naming the language) gets its Copy button; a formula
    // (server-rendered as its TeX, escaped) is typeset by KaTeX with trust off: no \href, \url or
    // \html… command makes a link or an attribute. A formula KaTeX refuses stays as its TeX, marked.
    // This runs from a MutationObserver, so content swapped in by any means (a streamed block, a
    // finished answer, a page) is done before it is painted.
    const typeset = (el) => {
      if (!window.katex) return;
      try {
        window.katex.render(el.textContent, el, {
          displayMode: el.classList.contains("math-display"),
          throwOnError: true, // an error is shown below, as text: KaTeX's own uses an inline style
          trust: false,
          strict: "ignore",
          maxExpand: 1000,
          maxSize: 20,
          output: "htmlAndMathml",
        });
      } catch (err) {
        el.classList.add("math-error");
        el.title = String(err && err.message || err);
      }
      el.dataset.typeset = "1";
    };
    const decorate = (root) => {
      if (!root.querySelectorAll) return;
      root.querySelectorAll(".markdown .code-head").forEach((head) => {
        if (head.querySelector(".copy-code")) return;
        const b = document.createElement("button");
        b.type = "button";
        b.className = "copy-code";
        b.textContent = "Copy";
        b.setAttribute("aria-label", "Copy code");
        head.appendChild(b);
      });
      root.querySelectorAll(".markdown .math:not([data-typeset])").forEach(typeset);
    };
    decorate(document);
    new MutationObserver((records) => {
      for (const r of records) r.addedNodes.forEach((n) => { if (n.nodeType === 1) decorate(n.parentNode || n); });
    }).observe(messages, { childList: true, subtree: true });

    // --- Sidebar drawer (small screens) ------------------------------------------------------------
    const open = $("#open-sidebar");
    const scrim = $("#scrim");
    function toggleSidebar(on) {
      document.body.classList.toggle("sidebar-open", on);
      open.setAttribute("aria-expanded", on ? "true" : "false");
      scrim.hidden = !on;
      if (on) ($("#sidebar a.new-chat") || {}).focus?.();
    }
    open.addEventListener("click", () => toggleSidebar(true));
    $("#close-sidebar").addEventListener("click", () => toggleSidebar(false));
    scrim.addEventListener("click", () => toggleSidebar(false));

    // --- The composer names the model once it is loaded -------------------------------------------
    document.body.addEventListener("htmx:load", (e) => {
      const st = e.detail.elt;
      if (!st || st.id !== "model-status" || !st.dataset.model) return;
      const prompt = $("#prompt");
      if (prompt) prompt.placeholder = "Message " + st.dataset.model + "…";
      const lead = $("#empty-state-model");
      if (lead) lead.textContent = st.dataset.model;
    });

    // --- Title follows the conversation ------------------------------------------------------------
    document.body.addEventListener("htmx:oobAfterSwap", () => {
      const t = $("#chat-title");
      if (t) document.title = t.textContent.trim() + " · smolchat";
    });

    function notice(text) {
      const div = document.createElement("div");
      div.className = "notice error";
      div.setAttribute("role", "alert");
      div.textContent = text;
      messages.appendChild(div);
      toBottom();
      return div;
    }

    autosize();
    toBottom();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
