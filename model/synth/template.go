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
