"""The VK customer's page (served by ``demo/vk_customer.py``): a form to write to the community
as a VK user, and the conversation with the community's answers, edits, deletions and the
buttons under them to press.
"""

from __future__ import annotations

from page import html

PAGE = html(
    "VK customer (bridge demo)",
    "#edf2fa",
    """\
 #head { margin-top: 1.5rem; font-weight: 600; }
 #log { margin-top: .5rem; display: flex; flex-direction: column; gap: .5rem; }
 .msg { padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap; }
 .customer { align-self: flex-end; background: #cce4ff; }
 .community { align-self: flex-start; background: #f0f2f5; }
 .meta { font-size: .75rem; color: #666; } .deleted { color: #999; font-style: italic; }
 .failed { font-size: .75rem; color: #c00; }
 .quote { border-left: 3px solid #0077ff; padding-left: .4rem; color: #555; font-size: .85rem;
        margin-bottom: .2rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
""",
    """\
<h1>VK &mdash; a VK user writes to the community @COMMUNITY@</h1>
<p class="hint">This page plays a VK user writing to the community @COMMUNITY@
(vk.com/club@GROUP_ID@). The community lives on a local VK API simulator, which posts what you
send here to the bridge through the Callback API, as VK does; the company's staff answer in
Matrix, and their answers (the community's messages, edits and deletions) appear below. The
page refreshes itself.</p>
<form id="f">
 <label for="name">Your name</label><input id="name" value="@NAME@" required>
 <label for="user">VK user id</label><input id="user" value="@USER_ID@" required
   inputmode="numeric" pattern="[0-9]+">
 <label for="text">Message</label><textarea id="text"></textarea>
 <label for="file">File (optional)</label><input id="file" type="file">
 <button>Send</button><div id="status"></div>
</form>
<div id="head">Chat with @COMMUNITY@</div>
<div id="log"></div>
""",
    """\
async function refresh() {
  try {
    const r = await fetch('/api/messages?peer=' + encodeURIComponent($('user').value.trim()));
    const res = await r.json();
    showChat(res.messages, { id: 'cmid', company: 'community', name: res.community,
                             press: (m, b) => ({ peer_id: m.peer_id, cmid: m.cmid, id: b.id }) });
  } catch (e) { $('status').textContent = 'Cannot reach the simulator: ' + e; }
}
onSubmit(() => sendForm(
  { name: $('name').value, user_id: $('user').value, text: $('text').value },
  res => 'Delivered to the bridge through the Callback API (message ' + res.cmid + ').',
));
poll(1500, 'user');
""",
)
