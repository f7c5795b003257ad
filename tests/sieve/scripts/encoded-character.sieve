require ["encoded-character", "fileinto"];
if header :contains "subject" "${hex: 4C 75 6E 63 68}" { fileinto "${unicode: 4c}unch"; }
if header :contains "subject" "Gr${unicode:00fc}${unicode:00df}e" { fileinto "gruss"; }
