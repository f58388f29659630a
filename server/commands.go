package server

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
	"smolchat/server/store"
)

// Slash commands typed as a whole message in the browser chat. They change the chat's settings or the
// page and are not sent to the model.

type slashCommand struct {
	Name, Args, Help string
}

var slashCommands = []slashCommand{
	{"/help", "", "show this list"},
	{"/clear", "", "start a new, empty chat (this one stays in the sidebar)"},
	{"/think", "", "turn thinking on for this chat"},
	{"/no_think", "", "turn thinking off for this chat"},
	{"/temp", "N", "set the sampling temperature, 0 to 2 (0 always picks the likeliest token); /temp alone resets it"},
	{"/export", "", "download this chat as Markdown"},
}

// parseCommand recognizes a slash command. Text that merely starts with a slash ("/usr/bin is…") is a
// message.
func parseCommand(text string) (name, arg string, ok bool) {
	if !strings.HasPrefix(text, "/") {
		return "", "", false
	}
	name, arg, _ = strings.Cut(text, " ")
	arg = strings.TrimSpace(arg)
	for _, c := range slashCommands {
		if c.Name == name && (arg == "" || c.Args != "") {
			return name, arg, true
		}
	}
	return "", "", false
}

func (s *Server) runCommand(c *fiber.Ctx, name, arg, convID string, settings store.Preset) error {
	switch name {
	case "/help":
		return c.Render("partials/help", slashCommands)
	case "/clear":
		c.Set("HX-Redirect", "/")
		return c.SendString("")
	case "/export":
		if convID == "" {
			return s.commandReply(c, "There is nothing to export yet.", nil)
		}
		c.Set("HX-Redirect", "/c/"+convID+"/export/md")
		return c.SendString("")
	case "/think", "/no_think":
		settings.Think = name == "/think"
		rememberThink(c, settings.Think)
	case "/temp":
		settings.Temperature = nil
		if arg != "" {
			v, ok := parseTemperature(arg)
			if !ok {
				return fiber.NewError(fiber.StatusBadRequest, "Usage: /temp N, with N from 0 to 2 (for example /temp 0.7).")
			}
			settings.Temperature = &v
		}
	}
	if convID != "" {
		if err := s.saveSettings(c.UserContext(), convID, settings); err != nil {
			return err
		}
	}
	var msg string
	switch {
	case name == "/think":
		msg = "Thinking is on: the model reasons before it answers."
	case name == "/no_think":
		msg = "Thinking is off: the model answers directly."
	case settings.Temperature == nil:
		def := engine.DefaultSamplerParams().Temperature
		msg = "Temperature reset to the default (" + strconv.FormatFloat(float64(def), 'g', -1, 32) + ")."
	default:
		msg = "Temperature set to " + formatTemp(settings.Temperature) + "."
	}
	v := s.settingsView(c.UserContext(), settings)
	v.OOB = true
	return s.commandReply(c, msg, &v)
}

// commandReply appends a notice to the conversation and, when settings changed, updates the composer's
// controls to match.
func (s *Server) commandReply(c *fiber.Ctx, msg string, settings *settingsView) error {
	return c.Render("partials/command", struct {
		Message  string
		Settings *settingsView
	}{msg, settings})
}
