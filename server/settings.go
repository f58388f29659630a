package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
	"smolchat/server/store"
)

// The settings panel: a conversation's system prompt and generation settings, the defaults new chats
// start with, and named presets. Its fields are part of the composer's form, so that every message is
// sent with the settings the page shows; a change is saved to the conversation at once (/settings).
// An empty field means the default, which the field shows as its placeholder.

// maxSystemRunes caps a system prompt; the context window is the real limit, checked when a message is sent.
const maxSystemRunes = 20000

// maxPresetName caps a preset's name.
const maxPresetName = 60

// settingField is one number of the panel: its form name, its label in messages, and its range.
type settingField struct {
	name, label string
	integer     bool
	lo, hi      float64
	loOpen      bool   // lo itself is refused
	unset       string // what an empty field means, shown as its placeholder
	float       func(p *store.Preset) **float64
	int         func(p *store.Preset) **int
}

var settingFields = func() []settingField {
	d := engine.DefaultSamplerParams()
	g := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return []settingField{
		{name: "temperature", label: "Temperature", lo: 0, hi: 2, unset: g(d.Temperature),
			float: func(p *store.Preset) **float64 { return &p.Temperature }},
		{name: "top_p", label: "Top-p", lo: 0, hi: 1, loOpen: true, unset: g(d.TopP),
			float: func(p *store.Preset) **float64 { return &p.TopP }},
		{name: "top_k", label: "Top-k", integer: true, lo: 0, hi: 1 << 20, unset: "off",
			int: func(p *store.Preset) **int { return &p.TopK }},
		{name: "min_p", label: "Min-p", lo: 0, hi: 1, unset: "off",
			float: func(p *store.Preset) **float64 { return &p.MinP }},
		{name: "repeat_penalty", label: "Repeat penalty", lo: 0, hi: 10, loOpen: true, unset: "off",
			float: func(p *store.Preset) **float64 { return &p.RepeatPenalty }},
		{name: "max_tokens", label: "Max answer tokens", integer: true, lo: 1, hi: 1 << 20, unset: "no limit",
			int: func(p *store.Preset) **int { return &p.MaxTokens }},
	}
}()

// rangeText says what a field takes, for its error message and its tooltip.
func (f settingField) rangeText() string {
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	switch {
	case f.integer:
		return fmt.Sprintf("a whole number from %s to %s", num(f.lo), num(f.hi))
	case f.loOpen:
		return fmt.Sprintf("a number above %s and at most %s", num(f.lo), num(f.hi))
	}
	return fmt.Sprintf("a number from %s to %s", num(f.lo), num(f.hi))
}

// parse reads the field's text into p. The range is checked in a form that NaN fails (strconv reads
// "NaN" and "Inf" as numbers).
func (f settingField) parse(text string, p *store.Preset) error {
	text = strings.TrimSpace(text)
	if text == "" {
		if f.integer {
			*f.int(p) = nil
		} else {
			*f.float(p) = nil
		}
		return nil
	}
	bad := fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("%s must be %s, or empty for the default (%s); %q is not.",
		f.label, f.rangeText(), f.unset, text))
	if f.integer {
		v, err := strconv.Atoi(text)
		if err != nil || float64(v) < f.lo || float64(v) > f.hi {
			return bad
		}
		*f.int(p) = &v
		return nil
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || !(v >= f.lo && v <= f.hi) || (f.loOpen && v == f.lo) {
		return bad
	}
	*f.float(p) = &v
	return nil
}

// format writes the field's value as the panel shows it ("" for the default).
func (f settingField) format(p store.Preset) string {
	if f.integer {
		if v := *f.int(&p); v != nil {
			return strconv.Itoa(*v)
		}
		return ""
	}
	if v := *f.float(&p); v != nil {
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	return ""
}

// formSettings reads the settings the composer's form was sent with.
func formSettings(c *fiber.Ctx) (store.Preset, error) {
	p := store.Preset{Think: c.FormValue("think") == "on"}
	for _, f := range settingFields {
		if err := f.parse(c.FormValue(f.name), &p); err != nil {
			return p, err
		}
	}
	switch p.ThinkDefault = c.FormValue("think_default"); p.ThinkDefault {
	case "", "on", "off":
	default:
		return p, fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("think_default is %q: it is on, off or empty (the Thinking switch as last left).", p.ThinkDefault))
	}
	sys := strings.TrimSpace(c.FormValue("system"))
	if err := checkSystem(sys); err != nil {
		return p, fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	p.System = sys
	return p, nil
}

// checkSystem refuses a system prompt that is not UTF-8 text or is too long.
func checkSystem(sys string) error {
	if !utf8.ValidString(sys) {
		return errors.New("the system prompt is not valid UTF-8 text")
	}
	if n := utf8.RuneCountInString(sys); n > maxSystemRunes {
		return fmt.Errorf("the system prompt is %s characters; the limit is %s", thousands(n), thousands(maxSystemRunes))
	}
	return nil
}

// presetOf is a conversation's settings as a preset.
func presetOf(conv store.Conversation) store.Preset {
	return store.Preset{Think: conv.Think, Temperature: conv.Temperature, Settings: conv.Settings}
}

// withPreset gives a conversation the settings of p.
func withPreset(conv store.Conversation, p store.Preset) store.Conversation {
	conv.Think, conv.Temperature, conv.Settings = p.Think, p.Temperature, p.Settings
	return conv
}

// genParams are the generation parameters of a conversation's settings.
func genParams(p store.Preset) engine.GenParams {
	g := engine.GenParams{SamplerParams: engine.DefaultSamplerParams()}
	f32 := func(dst *float32, v *float64) {
		if v != nil {
			*dst = float32(*v)
		}
	}
	f32(&g.Temperature, p.Temperature)
	f32(&g.TopP, p.TopP)
	f32(&g.MinP, p.MinP)
	f32(&g.RepeatPenalty, p.RepeatPenalty)
	if p.TopK != nil {
		g.TopK = *p.TopK
	}
	if p.MaxTokens != nil {
		g.MaxTokens = *p.MaxTokens
	}
	return g
}

// chatMessages is a conversation as the engine reads it: the system prompt, if any, then the turns.
func chatMessages(system string, msgs []store.Message) []engine.Message {
	out := make([]engine.Message, 0, len(msgs)+1)
	if system != "" {
		out = append(out, engine.Message{Role: "system", Content: system})
	}
	for _, m := range msgs {
		out = append(out, engine.Message{Role: m.Role, Content: m.Content})
	}
	return out
}

// newChatDefaults are the settings a new chat starts with: those saved as the defaults, else the model
// card's; serve --system sets the system prompt over either. Thinking is on or off as the defaults
// say (ThinkDefault), else as this browser's Thinking switch was last left.
func (s *Server) newChatDefaults(c *fiber.Ctx) (store.Preset, error) {
	p, _, err := s.store.NewChatDefaults(c.UserContext())
	if err != nil {
		return p, err
	}
	if s.cfg.System != "" {
		p.System = s.cfg.System
	}
	p.Think = defaultThink(c)
	if p.ThinkDefault != "" {
		p.Think = p.ThinkDefault == "on"
	}
	return p, nil
}

// settingsView is the composer's settings as the page shows them.
func (s *Server) settingsView(ctx context.Context, p store.Preset) settingsView {
	v := settingsView{Think: p.Think, Temperature: formatTemp(p.Temperature), System: p.System, NoReasoning: s.noReasoning()}
	for _, f := range settingFields {
		v.Fields = append(v.Fields, fieldView{Name: f.name, Label: f.label, Value: f.format(p), Unset: f.unset,
			Range: f.rangeText(), Integer: f.integer})
	}
	if d, _, err := s.store.NewChatDefaults(ctx); err == nil {
		v.ThinkDefault = d.ThinkDefault // the panel shows the saved one, whatever chat it is on
	} else {
		s.log.Error("reading the defaults for new chats", "err", err)
	}
	if list, err := s.store.Presets(ctx); err == nil {
		for _, pr := range list {
			v.Presets = append(v.Presets, pr.Name)
		}
	} else {
		s.log.Error("listing presets", "err", err)
	}
	return v
}

// renderSettings answers with the composer's settings, the panel left open with a status line.
func (s *Server) renderSettings(c *fiber.Ctx, p store.Preset, status string) error {
	v := s.settingsView(c.UserContext(), p)
	v.Open, v.Status = true, status
	return c.Render("partials/settings", v)
}

func (s *Server) handleSettings(c *fiber.Ctx) error {
	p, err := formSettings(c)
	if err != nil {
		return err
	}
	rememberThink(c, p.Think)
	if id := c.FormValue("conversation"); id != "" {
		if err := s.saveSettings(c.UserContext(), id, p); err != nil {
			return err
		}
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// saveSettings stores a conversation's settings.
func (s *Server) saveSettings(ctx context.Context, id string, p store.Preset) error {
	conv, err := s.loadConversation(ctx, id)
	if err != nil {
		return err
	}
	if err := s.store.UpdateSettings(ctx, withPreset(conv, p)); err != nil {
		return errNotSaved(err)
	}
	return nil
}

// handleDefaults saves the form's settings as the defaults of new chats.
func (s *Server) handleDefaults(c *fiber.Ctx) error {
	p, err := formSettings(c)
	if err != nil {
		return err
	}
	rememberThink(c, p.Think)
	if err := s.store.SaveNewChatDefaults(c.UserContext(), p); err != nil {
		return errNotSaved(err)
	}
	status := "New chats will start with these settings."
	if s.cfg.System != "" && p.System != s.cfg.System {
		status += " Their system prompt still comes from serve --system while the server runs with it."
	}
	return s.renderSettings(c, p, status)
}

// presetName reads and checks the name of a preset.
func presetName(c *fiber.Ctx, field string) (string, error) {
	name := strings.Join(strings.Fields(c.FormValue(field)), " ")
	switch {
	case name == "":
		return "", fiber.NewError(fiber.StatusBadRequest, "Give the preset a name first.")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxPresetName:
		return "", fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("A preset's name is text of at most %d characters.", maxPresetName))
	}
	return name, nil
}

// handlePresetSave saves the form's settings under a name.
func (s *Server) handlePresetSave(c *fiber.Ctx) error {
	p, err := formSettings(c)
	if err != nil {
		return err
	}
	if p.Name, err = presetName(c, "preset_name"); err != nil {
		return err
	}
	p.ThinkDefault = "" // a setting of new chats, not of a preset
	if err := s.store.SavePreset(c.UserContext(), p); err != nil {
		return errNotSaved(err)
	}
	return s.renderSettings(c, p, fmt.Sprintf("Saved as the preset %q.", p.Name))
}

// handlePresetApply gives the conversation (or the chat about to start) the settings of a preset.
func (s *Server) handlePresetApply(c *fiber.Ctx) error {
	name, err := presetName(c, "preset")
	if err != nil {
		return err
	}
	p, err := s.findPreset(c.UserContext(), name)
	if err != nil {
		return err
	}
	if id := c.FormValue("conversation"); id != "" {
		if err := s.saveSettings(c.UserContext(), id, p); err != nil {
			return err
		}
	}
	rememberThink(c, p.Think)
	return s.renderSettings(c, p, fmt.Sprintf("Using the preset %q.", name))
}

// handlePresetDelete removes the preset chosen in the panel; the panel keeps the settings it shows.
func (s *Server) handlePresetDelete(c *fiber.Ctx) error {
	name, err := presetName(c, "preset")
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "Choose the preset to delete first.")
	}
	p, err := formSettings(c)
	if err != nil {
		return err
	}
	if err := s.store.DeletePreset(c.UserContext(), name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("There is no preset %q any more.", name))
		}
		return errNotSaved(err)
	}
	return s.renderSettings(c, p, fmt.Sprintf("Deleted the preset %q.", name))
}

func (s *Server) findPreset(ctx context.Context, name string) (store.Preset, error) {
	list, err := s.store.Presets(ctx)
	if err != nil {
		return store.Preset{}, err
	}
	for _, p := range list {
		if p.Name == name {
			return p, nil
		}
	}
	return store.Preset{}, fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("There is no preset %q.", name))
}
