package synth

// ChatTemplate is the tokenizer.chat_template stored in synthesized files. Hugging Face's SmolLM3 template
// is not available offline, so this is smolchat's own short Jinja text in the same layout (no tools): a
// system turn that names the reasoning mode, then ChatML turns, with an empty think block pre-filled in
// /no_think mode. It carries the markers ("<|im_start|>", "Reasoning Mode", "/no_think") by which
// programs, smolchat's chat package among them, recognise a SmolLM3 template.
const ChatTemplate = `{#- Stand-in chat template written by smolchat synth for a synthetic model. It is not Hugging Face's SmolLM3 template: it only follows the same layout (Reasoning Mode: /think or /no_think in the system turn, ChatML turns, no tools). -#}
{%- set ns = namespace(mode='/think', instructions='') -%}
{%- if enable_thinking is defined and not enable_thinking -%}{%- set ns.mode = '/no_think' -%}{%- endif -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set text = messages[0]['content'] -%}
{%- if '/no_think' in text -%}{%- set ns.mode = '/no_think' -%}{%- elif '/think' in text -%}{%- set ns.mode = '/think' -%}{%- endif -%}
{%- set ns.instructions = text | replace('/no_think', '') | replace('/think', '') | trim -%}
{%- endif -%}
<|im_start|>system
## Metadata

Reasoning Mode: {{ ns.mode }}

## Custom Instructions

{{ ns.instructions if ns.instructions else 'You are a helpful AI assistant named SmolLM.' }}

{% for message in messages -%}
{%- if message['role'] == 'assistant' -%}
<|im_start|>assistant
{% if ns.mode == '/no_think' %}<think>

</think>
{% endif %}{{ message['content'] }}<|im_end|>
{% elif message['role'] != 'system' -%}
<|im_start|>user
{{ message['content'] }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% if ns.mode == '/no_think' %}<think>

</think>
{% endif -%}
{%- endif -%}
`

// Qwen3Template is Qwen3's chat template (Qwen3-0.6B's tokenizer_config.json, Apache-2.0), as llama.cpp
// keeps it in models/templates/Qwen-Qwen3-0.6B.jinja (v0.5.0): ChatML turns, <think> blocks and the
// enable_thinking switch, by which smolchat's chat package recognises it.
const Qwen3Template = `{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}`
