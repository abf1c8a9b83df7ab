package simulator

import (
	"fmt"
	"net/http"
	"strconv"
)

// apiError is OpenAI's error object; Param and Code are null when unset.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
}

func errorResponse(status int, typ string, code, param any, msg string) response {
	return jsonResponse(status, struct {
		Error apiError `json:"error"`
	}{apiError{Message: msg, Type: typ, Param: param, Code: code}})
}

func errInvalidRequest(msg string, param any) response {
	return errorResponse(http.StatusBadRequest, "invalid_request_error", nil, param, msg)
}

func errInvalidAPIKey() response {
	return errorResponse(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", nil,
		"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.")
}

func errContextLength(limit, got int) response {
	return errorResponse(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", "messages",
		fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", limit, got))
}

// errRateLimit is a 429 that tells the client when to come back.
func errRateLimit(typ, msg string, retryAfter int) response {
	r := errorResponse(http.StatusTooManyRequests, typ, "rate_limit_exceeded", nil, msg)
	r.header = map[string]string{
		"Retry-After":                strconv.Itoa(retryAfter),
		"x-ratelimit-reset-requests": strconv.Itoa(retryAfter) + "s",
	}
	return r
}

func htmlResponse(status int, body string) response {
	return response{status: status, contentType: "text/html; charset=utf-8", body: []byte(body)}
}

const html502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
	"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

const html200 = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n" +
	"<body><h1>Sign in to continue</h1><p>Your session has expired. (mockllm html200)</p></body></html>\n"

// faultResponse returns the response of a fault code for call c. retryAfter is the
// Retry-After of a 429.
func faultResponse(code string, c *call, retryAfter int) response {
	switch code {
	case CodeOverflow:
		// A forced overflow has no real limit: claim half the prompt, so
		// a truncating client has a consistent target.
		return errContextLength(max(1, c.prompt/2), c.prompt)
	case CodeBadJSON:
		return c.completion(ReplyPrefix + c.key + " not json")
	case CodeEmpty:
		return c.completion("")
	case CodeLength:
		// Cut at the token limit: half the reply, finish_reason length.
		return c.completionWith(c.reply[:len(c.reply)/2], "length", true)
	case CodeNoUsage:
		// Self-hosted servers (some vLLM, llama.cpp and proxy setups) send
		// no usage: nothing is counted.
		return c.success(false)
	case CodeSchemaMiss:
		return c.completion(SchemaMissReply)
	}
	return errorFault(code, c.req.Model, retryAfter)
}

// errorFault returns the response of a fault code that answers the same
// for every endpoint: an error, an HTML page, no answer or a reset
// connection. model is the request's; retryAfter the Retry-After of a 429.
func errorFault(code, model string, retryAfter int) response {
	switch code {
	case Code400:
		return errInvalidRequest("Invalid request (simulated by mockllm).", nil)
	case Code401:
		return errInvalidAPIKey()
	case Code403:
		return errorResponse(http.StatusForbidden, "permission_error", "permission_denied", nil,
			"You are not allowed to make this request (simulated by mockllm).")
	case Code404:
		return errorResponse(http.StatusNotFound, "invalid_request_error", "model_not_found", "model",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model))
	case Code429:
		return errRateLimit("requests", fmt.Sprintf(
			"Rate limit reached for %s on requests (simulated by mockllm). Please try again in %ds.", model, retryAfter), retryAfter)
	case CodeQuota:
		return errorResponse(http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota", nil,
			"You exceeded your current quota, please check your plan and billing details.")
	case Code500:
		return errorResponse(http.StatusInternalServerError, "server_error", nil, nil,
			"The server had an error while processing your request. Sorry about that!")
	case Code502:
		return errorResponse(http.StatusBadGateway, "server_error", nil, nil, "Bad gateway.")
	case Code503:
		return errorResponse(http.StatusServiceUnavailable, "server_error", nil, nil, "Service Unavailable.")
	case Code504:
		return errorResponse(http.StatusGatewayTimeout, "server_error", nil, nil, "Gateway timeout.")
	case Code529:
		return errorResponse(529, "overloaded_error", nil, nil, "Overloaded")
	case CodeHTML502:
		return htmlResponse(http.StatusBadGateway, html502)
	case CodeHTML200:
		return htmlResponse(http.StatusOK, html200)
	case CodeFilter:
		return errorResponse(http.StatusBadRequest, "invalid_request_error", "content_filter", "prompt",
			"The response was filtered due to the prompt triggering the content management policy. Please modify your prompt and retry.")
	case CodeTimeout:
		return response{hold: true}
	case CodeReset:
		return response{reset: true}
	default:
		// Codes are validated when parsed, and the content codes answered
		// by the endpoint; an unknown one is a bug here.
		panic("simulator: no response for fault code " + strconv.Quote(code))
	}
}
