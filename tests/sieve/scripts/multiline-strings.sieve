require "fileinto";
if header :contains "subject" text:
Lunch
.
{ fileinto text:
Multi
.
; }
