require "fileinto";
if header :contains ["subject", "x-spam-flag"] ["release", "no"] { fileinto "contains"; stop; }
if header :contains "from" "" { fileinto "has-from"; }
