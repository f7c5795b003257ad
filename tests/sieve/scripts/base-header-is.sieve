require "fileinto";
if header :is "subject" "Lunch on Friday?" { fileinto "is"; }
elsif header :is "SUBJECT" "lunch on friday?" { fileinto "casemap"; }
