"""The WhatsApp customer's page (served by ``demo/whatsapp_customer.py``): a form to write to
the business number, the chats, and the conversation with the business's messages, templates,
reactions, reply buttons to tap and the ticks the customer's phone reports.
"""

from __future__ import annotations

from page import html

PAGE = html(
    "WhatsApp customer (bridge demo)",
    "#e7f6ec",
    """\
 #chats { margin-top: 1rem; font-size: .85rem; color: #555; }
 #chats a { margin-right: .6rem; cursor: pointer; color: #128c7e; }
 #head { margin-top: 1rem; font-weight: 600; }
 #log { margin-top: .5rem; display: flex; flex-direction: column; gap: .5rem; background: #efeae2;
        padding: .8rem; border-radius: .5rem; }
 .msg { padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap;
        box-shadow: 0 1px 1px rgba(0,0,0,.1); }
 .customer { align-self: flex-end; background: #d9fdd3; }
 .business { align-self: flex-start; background: #fff; }
 .template { border-left: 4px solid #25d366; }
 .meta { font-size: .75rem; color: #666; } .ticks { font-size: .75rem; color: #888; }
 .ticks.read { color: #34b7f1; } .ticks.failed { color: #c00; }
 .quote { border-left: 3px solid #25d366; padding-left: .4rem; color: #555; font-size: .85rem;
        margin-bottom: .2rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
 .reaction { font-size: 1.1rem; }
 code { background: #f3f3f3; padding: 0 .2rem; }
""",
    """\
<h1>WhatsApp &mdash; a customer writes to @BUSINESS@ (@BUSINESS_NUMBER@)</h1>
<p class="hint">This page plays a customer in the WhatsApp app. The business number lives on a
local WhatsApp Business Cloud API simulator, which delivers what you send here to the bridge as
a signed webhook, as Meta does; the company's staff answer in Matrix, and their answers appear
below (the page refreshes itself). The ticks are what your phone reports back to the business:
✓ sent, ✓✓ delivered, <span style="color:#34b7f1">✓✓</span> read. Templates the business may
send even when you have not written for 24 hours:</p>
<ul class="hint">@TEMPLATES@</ul>
<p class="hint">Try them from Matrix: <code>!bridge template</code> in the WhatsApp room lists
them, <code>!bridge template hello_world en_US ACME</code> sends one; in a direct chat with the
bridge bot <code>template @ACCOUNT@ +491701234567 hello_world en_US ACME</code> writes to any
number.</p>
<p class="hint">The newsletter: send <a href="?text=NEWSLETTER">NEWSLETTER</a> (what the
click-to-chat link <code>wa.me/@BUSINESS_DIGITS@?text=NEWSLETTER</code> fills in) and tap a
reply button of the answer; <code>STOP</code> unsubscribes.</p>
<form id="f">
 <label for="name">Your name</label><input id="name" value="@NAME@" required>
 <label for="number">Phone number</label><input id="number" value="@NUMBER@" required
   inputmode="tel">
 <label for="text">Message</label><textarea id="text"></textarea>
 <label for="file">File (optional)</label><input id="file" type="file">
 <button>Send</button><div id="status"></div>
</form>
<div id="chats"></div>
<div id="head">Chat with @BUSINESS@</div>
<div id="log"></div>
""",
    """\
function digits(s) { return s.replace(/[^0-9]/g, ''); }
function esc(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
// WhatsApp's markup, roughly as the app shows it.
function markup(text) {
  let h = esc(text);
  h = h.replace(/```([\\s\\S]+?)```/g, '<code>$1</code>');
  const B = '(^|[\\\\s.,;:!?(])', E = '(?=$|[\\\\s.,;:!?)])';
  h = h.replace(new RegExp(B + '\\\\*([^*\\\\n]*[^*\\\\s])\\\\*' + E, 'gm'), '$1<b>$2</b>');
  h = h.replace(new RegExp(B + '_([^_\\\\n]*[^_\\\\s])_' + E, 'gm'), '$1<i>$2</i>');
  h = h.replace(new RegExp(B + '~([^~\\\\n]*[^~\\\\s])~' + E, 'gm'), '$1<s>$2</s>');
  return h;
}
const TICKS = { sent: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠ failed' };
async function refresh() {
  try {
    const number = digits($('number').value);
    const r = await fetch('/api/messages?number=' + encodeURIComponent(number));
    const res = await r.json();
    const chats = $('chats'); chats.textContent = '';
    if (res.chats.length) {
      chats.append('Chats: ');
      for (const c of res.chats) {
        const a = document.createElement('a');
        a.textContent = '+' + c.number + (c.name ? ' (' + c.name + ')' : '');
        a.onclick = () => { $('number').value = '+' + c.number;
                            if (c.name) { $('name').value = c.name; } refresh(); };
        chats.append(a);
      }
    }
    const log = $('log'); log.textContent = '';
    if (!res.messages.length) { log.textContent = 'No messages with this number yet.'; }
    const byId = {};
    for (const m of res.messages) { byId[m.wamid] = m; }
    for (const m of res.messages) {
      const bubble = div('msg ' + m.direction + (m.template ? ' template' : ''));
      bubble.append(div('meta', (m.direction === 'business' ? res.business : m.name) + ' · '
        + fmt(m.time) + (m.template ? ' · template ' + m.template.name + ' ('
        + m.template.language + ')' : '')));
      const quoted = m.reply_to && byId[m.reply_to];
      if (quoted) {
        bubble.append(div('quote', quoted.text || (quoted.file || {}).name || quoted.kind));
      }
      if (m.text) {
        const text = div(''); text.innerHTML = markup(m.text);
        bubble.append(text);
      }
      if (m.file) { bubble.append(fileLink(m.file, true)); }
      if (m.reactions.length) { bubble.append(div('reaction', m.reactions.join(' '))); }
      if (m.buttons) { bubble.append(buttonRows(m.buttons, b => ({ wamid: m.wamid, id: b.id }))); }
      const ticks = document.createElement('div');
      if (m.direction === 'business' && m.status) {
        ticks.className = 'ticks ' + m.status; ticks.textContent = TICKS[m.status] || m.status;
      } else if (m.direction === 'customer' && !m.accepted) {
        ticks.className = 'ticks failed'; ticks.textContent = '⚠ the bridge did not take it';
      } else if (m.direction === 'customer' && m.read) {
        ticks.className = 'ticks read'; ticks.textContent = 'read by ' + res.business;
      }
      bubble.append(ticks);
      log.append(bubble);
    }
  } catch (e) { $('status').textContent = 'Cannot reach the simulator: ' + e; }
}
onSubmit(() => sendForm(
  { name: $('name').value, number: $('number').value, text: $('text').value },
  () => 'Delivered to the bridge as a signed webhook.',
));
const prefilled = new URLSearchParams(location.search).get('text');
if (prefilled) { $('text').value = prefilled; }
poll(1500, 'number');
""",
)
