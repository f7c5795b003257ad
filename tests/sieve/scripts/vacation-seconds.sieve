require "vacation-seconds";
vacation :seconds 172800 :subject "Away" "Gone for two days.";
