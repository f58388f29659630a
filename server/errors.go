package server

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// apiError is an error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	// RetryAfter, in seconds, is sent as the Retry-After header when set.
	RetryAfter string `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

// apiErr makes an apiError; param may be empty.
func apiErr(status int, typ, param, format string, args ...any) *apiError {
	e := &apiError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = &param
	}
	return e
}

// badRequest is a 400 invalid_request_error about param.
func badRequest(param, format string, args ...any) *apiError {
	return apiErr(fiber.StatusBadRequest, "invalid_request_error", param, format, args...)
}

func (e *apiError) withCode(code string) *apiError {
	e.Code = &code
	return e
}

// errLoading is the answer while the model is not ready.
func (s *Server) errLoading() *apiError {
	st := s.load.Load()
	if st.err != nil {
		return apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "the model failed to load: %v", st.err).
			withCode("model_load_failed")
	}
	e := apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "the model is loading (%.0f%%: %s)", st.frac*100, st.msg).
		withCode("model_loading")
	e.RetryAfter = retryAfter
	return e
}

// errBusy is the answer when the queue is full.
func errBusy() *apiError {
	e := apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "%v; retry later", errQueueFull).withCode("queue_full")
	e.RetryAfter = retryAfter
	return e
}

// errorStatus is the HTTP status an error handler error maps to.
func errorStatus(err error) int {
	var ae *apiError
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae.Status
	case errors.As(err, &fe):
		return fe.Code
	}
	return fiber.StatusInternalServerError
}

// isAPI reports whether the request is for the OpenAI-compatible API, which answers errors in JSON.
func isAPI(c *fiber.Ctx) bool {
	p := c.Path()
	return p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/health"
}

// handleError answers every error a handler returns: JSON in OpenAI's shape for the API, an HTML notice
// that htmx appends to the conversation for the page.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status := errorStatus(err)
	var ae *apiError
	if !errors.As(err, &ae) {
		msg := err.Error()
		var fe *fiber.Error
		if errors.As(err, &fe) && fe == fiber.ErrRequestEntityTooLarge { // limitBody's, not a handler's own
			msg = fmt.Sprintf("request body is larger than the limit of %d bytes", s.cfg.BodyLimit)
			if c.Path() == "/attach" {
				msg = fmt.Sprintf("The file is larger than the limit of %s for an attachment.", mebibytes(maxAttachmentBytes))
			}
		}
		if status == fiber.StatusInternalServerError {
			s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
			msg = "internal server error"
		}
		typ := "invalid_request_error"
		switch {
		case status == fiber.StatusNotFound:
			typ = "not_found_error"
		case status >= 500:
			typ = "server_error"
		}
		ae = apiErr(status, typ, "", "%s", msg)
	}
	if ae.RetryAfter != "" {
		c.Set(fiber.HeaderRetryAfter, ae.RetryAfter)
	}
	if isAPI(c) {
		return c.Status(status).JSON(fiber.Map{"error": ae})
	}
	return s.renderNotice(c.Status(status), "error", ae.Message)
}
