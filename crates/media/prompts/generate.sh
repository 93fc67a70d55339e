#!/usr/bin/env bash
# Regenerates the default prompts embedded in permanence-media, in French
# (PROMPT_LANG=fr, the default: prompts/fr/) or English (PROMPT_LANG=en:
# prompts/en/). Every spoken prompt has both texts, side by side below.
#
# Not run by the build: the WAV files it writes under prompts/LANG/ are
# committed, and `src/prompts.rs` embeds them with include_bytes!. The hold
# music and the ringback tone are not speech: written with the French set
# only, shared by both. `english_offer` ("For English, press 9") is spoken
# in English whatever the set: written with the English set only.
#
# Needs espeak-ng and sox (Debian: apt-get install -y espeak-ng sox).
# Every output is 8 kHz, mono, 16-bit signed PCM WAV (check with soxi).
#
# Usage: crates/media/prompts/generate.sh            (writes prompts/fr/*.wav)
#        PROMPT_LANG=en crates/media/prompts/generate.sh (writes prompts/en/*.wav)
#        VOICE=fr+f3 SPEED=145 crates/media/prompts/generate.sh
#        crates/media/prompts/generate.sh NAME...    (writes only prompts/fr/NAME.wav
#                                                     for each NAME, e.g. digit_0 ringback)
#
# With NAME arguments, every other committed WAV is left untouched: use this
# when adding prompts, so that a different espeak-ng/sox version does not
# silently change the existing ones. An unknown NAME is an error.
set -euo pipefail

ONLY=("$@")

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LNG="${PROMPT_LANG:-fr}"
case "$LNG" in
    fr) DEFAULT_VOICE=fr+f3 ;;
    en) DEFAULT_VOICE=en-gb+f3 ;;
    *) echo "PROMPT_LANG must be fr or en, not $LNG" >&2; exit 1 ;;
esac
OUT="$HERE/$LNG"
VOICE="${VOICE:-$DEFAULT_VOICE}"
SPEED="${SPEED:-145}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
DONE=()

# wanted NAME: true if NAME.wav is to be written (no NAME arguments: all).
wanted() {
    local n
    [[ ${#ONLY[@]} -eq 0 ]] && return 0
    for n in "${ONLY[@]}"; do
        [[ "$n" == "$1" ]] && return 0
    done
    return 1
}

for tool in espeak-ng sox soxi; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# pick FR EN: the text of the set being written.
pick() {
    if [[ "$LNG" == en ]]; then printf '%s' "$2"; else printf '%s' "$1"; fi
}

# speak NAME FR EN: synthesise the set's text, trim leading/trailing silence,
# resample to 8 kHz mono 16-bit, peak-normalise to -3 dBFS, add a short tail
# of silence.
speak() {
    local name="$1" text
    text="$(pick "$2" "$3")"
    wanted "$name" || return 0
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$WORK/raw.wav" "$text"
    sox "$WORK/raw.wav" -r 8000 -c 1 -b 16 "$OUT/$name.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        norm -3 pad 0 0.15
    DONE+=("$name")
}

# ---- whole prompts -------------------------------------------------------
speak greeting "Bonjour, vous êtes bien au secrétariat de votre praticien. Merci de patienter, une secrétaire va vous répondre." \
    "Hello, you have reached your practitioner's secretariat. Please hold, a secretary will answer you."
speak closed "Le cabinet est actuellement fermé. En cas d'urgence vitale, composez le 15. Sinon, merci de rappeler pendant les heures d'ouverture du cabinet. Au revoir." \
    "The practice is closed at the moment. In a life-threatening emergency, dial 15. Otherwise, please call back during the practice's opening hours. Goodbye."
speak callback_taken "Votre demande de rappel est enregistrée. Une secrétaire vous rappellera dès que possible. Au revoir." \
    "Your callback request has been recorded. A secretary will call you back as soon as possible. Goodbye."
speak menu "Pour une urgence, tapez 1. Pour un rendez-vous, tapez 2. Pour des résultats d'examens, tapez 3." \
    "For an emergency, press 1. For an appointment, press 2. For test results, press 3."
speak overflow "Toutes nos secrétaires sont actuellement occupées et nous ne pouvons pas prendre votre appel. En cas d'urgence vitale, composez le 15. Merci de rappeler un peu plus tard. Au revoir." \
    "All our secretaries are busy at the moment and we cannot take your call. In a life-threatening emergency, dial 15. Please call back a little later. Goodbye."

# Agent feature-code confirmations (heard by the telesecretary).
speak feature_paused "Pause activée. Vous ne recevrez plus d'appels." \
    "Pause on. You will not receive calls."
speak feature_unpaused "Fin de pause. Vous recevez à nouveau les appels." \
    "Pause over. You are receiving calls again."
speak feature_login "Vous êtes connecté aux files d'attente." \
    "You are logged in to the queues."
speak feature_logout "Vous êtes déconnecté des files d'attente." \
    "You are logged out of the queues."
speak feature_unknown "Code inconnu." \
    "Unknown code."

# Voicemail: speech followed by a 1 kHz beep (0.4 s).
if wanted voicemail; then
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$WORK/raw.wav" "$(pick \
        "Vous pouvez laisser un message au cabinet. Indiquez votre nom, votre numéro de téléphone et l'objet de votre appel. Parlez après le bip." \
        "You can leave a message for the practice. Give your name, your phone number and the reason for your call. Speak after the beep.")"
    sox "$WORK/raw.wav" -r 8000 -c 1 -b 16 "$WORK/vm_speech.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse norm -3 pad 0 0.4
    sox -n -r 8000 -c 1 -b 16 "$WORK/beep.wav" synth 0.4 sine 1000 fade t 0.01 0.4 0.01 gain -9
    sox "$WORK/vm_speech.wav" "$WORK/beep.wav" "$OUT/voicemail.wav"
    DONE+=(voicemail)
fi

# ---- queue announcement pieces -------------------------------------------
speak position_prefix "Vous êtes le" \
    "You are"
speak in_queue "en attente." \
    "in the queue."
speak position_over_20 "Plus de vingt personnes sont en attente avant vous." \
    "More than twenty people are waiting ahead of you."
speak wait_prefix "Temps d'attente estimé :" \
    "Estimated waiting time:"
speak wait_under_1_minute "moins d'une minute." \
    "less than one minute."
speak wait_over_30_minutes "plus de trente minutes." \
    "more than thirty minutes."
speak minute "minute." \
    "minute."
speak minutes "minutes." \
    "minutes."

ordinals_fr=(premier deuxième troisième quatrième cinquième sixième septième huitième
          neuvième dixième onzième douzième treizième quatorzième quinzième seizième
          dix-septième dix-huitième dix-neuvième vingtième)
ordinals_en=(first second third fourth fifth sixth seventh eighth ninth tenth
             eleventh twelfth thirteenth fourteenth fifteenth sixteenth
             seventeenth eighteenth nineteenth twentieth)
for i in "${!ordinals_fr[@]}"; do
    speak "ordinal_$((i + 1))" "${ordinals_fr[$i]}" "${ordinals_en[$i]}"
done

# Cardinals in the feminine ("une minute", "vingt et une minutes").
cardinals_fr=(une deux trois quatre cinq six sept huit neuf dix onze douze treize
           quatorze quinze seize dix-sept dix-huit dix-neuf vingt "vingt et une"
           vingt-deux vingt-trois vingt-quatre vingt-cinq vingt-six vingt-sept
           vingt-huit vingt-neuf trente)
cardinals_en=(one two three four five six seven eight nine ten eleven twelve
              thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty
              twenty-one twenty-two twenty-three twenty-four twenty-five twenty-six
              twenty-seven twenty-eight twenty-nine thirty)
for i in "${!cardinals_fr[@]}"; do
    speak "number_$((i + 1))" "${cardinals_fr[$i]}" "${cardinals_en[$i]}"
done

# ---- outbound calls (heard by the telesecretary) ---------------------------
speak outbound_refused "Ce numéro n'est pas autorisé pour les appels sortants de ce cabinet." \
    "This number is not allowed for outgoing calls from this practice."
speak outbound_no_practice "Appel impossible : le cabinet n'est pas connu. Composez étoile, huit, le code du cabinet, étoile, puis le numéro." \
    "Call not possible: the practice is unknown. Dial star, eight, the practice code, star, then the number."
speak outbound_not_served "Vous ne traitez pas les appels de ce cabinet." \
    "You do not handle this practice's calls."
speak outbound_invalid "Ce numéro n'est pas valide." \
    "This number is not valid."
speak outbound_limit "Vous avez déjà le nombre maximal d'appels sortants en cours." \
    "You already have the maximum number of outgoing calls in progress."

# ---- callbacks (heard by the caller, except callback_agent_intro) ----------
speak callback_offer "Pour être rappelé sans perdre votre place, tapez 2." \
    "To be called back without losing your place, press 2."
speak callback_confirm_prefix "Nous vous rappellerons au" \
    "We will call you back on"
speak callback_confirm_choice "Pour confirmer, tapez 1. Pour indiquer un autre numéro, tapez 3." \
    "To confirm, press 1. To give another number, press 3."
speak callback_enter_number "Composez le numéro auquel vous souhaitez être rappelé, suivi de la touche dièse." \
    "Dial the number you want to be called back on, followed by the hash key."
speak callback_invalid_number "Ce numéro n'est pas valide." \
    "This number is not valid."
speak callback_kept_place "Votre demande de rappel est enregistrée. Vous gardez votre place : une secrétaire vous rappellera. Au revoir." \
    "Your callback request has been recorded. You keep your place: a secretary will call you back. Goodbye."
# Heard by the agent before the patient answers.
speak callback_agent_intro "Rappel d'un patient. Appel en cours." \
    "Calling a patient back. Call in progress."

# ---- transfers (heard by the caller) ---------------------------------------
speak transfer_failed "Votre correspondant n'est pas joignable. Vous êtes replacé en tête de file, une secrétaire va vous répondre." \
    "The person you are calling cannot be reached. You are back at the head of the queue, a secretary will answer you."

# ---- digits, to read a phone number back -----------------------------------
digits_fr=(zéro un deux trois quatre cinq six sept huit neuf)
digits_en=(zero one two three four five six seven eight nine)
for i in "${!digits_fr[@]}"; do
    speak "digit_$i" "${digits_fr[$i]}" "${digits_en[$i]}"
done
speak digit_plus "plus" \
    "plus"

# ---- the language choice (heard by the caller after the greeting) ---------
# Spoken in English whatever the caller's language: English set only.
if [[ "$LNG" == en ]]; then
    speak english_offer "" "For English, press 9."
fi

# ---- not speech: French set only, shared by the English one -----------------
if [[ "$LNG" == en ]]; then
    for n in ringback hold_music; do
        if [[ ${#ONLY[@]} -gt 0 ]] && wanted "$n"; then
            echo "$n is written with PROMPT_LANG=fr" >&2
            exit 1
        fi
    done
    ONLY_SHARED=skip
fi

# ---- ringback (heard by an agent while the patient's phone rings) ----------
# French ringback: 440 Hz, 1.5 s on then 3.5 s off (one 5 s cycle, loopable),
# same level as the voicemail beep.
if [[ -z "${ONLY_SHARED:-}" ]] && wanted ringback; then
    sox -n -r 8000 -c 1 -b 16 "$OUT/ringback.wav" \
        synth 1.5 sine 440 fade t 0.01 1.5 0.01 gain -9 pad 0 3.5
    DONE+=(ringback)
fi

# ---- hold music ------------------------------------------------------------
# A soft I-vi-IV-V progression (C, Am, F, G), 3 s per chord, played twice:
# sine pads with slow attack/release plus a quiet plucked arpeggio. Each
# chord fades in and out, so the 24 s file loops without a click. Normalised
# to an RMS of about -18 dBFS.
hz() { # hz SEMITONES_FROM_A4 -> frequency in Hz
    awk -v n="$1" 'BEGIN { printf "%.2f", 440 * 2 ^ (n / 12) }'
}
chord() { # chord NAME "ROOT THIRD FIFTH" BASS (semitones from A4)
    local name="$1" notes="$2" bass="$3" parts=() n i=0
    for n in $notes; do
        sox -n -r 8000 -c 1 -b 16 "$WORK/${name}_pad$i.wav" synth 3 sine "$(hz "$n")" fade t 0.6 3 0.9 vol 0.16
        parts+=("$WORK/${name}_pad$i.wav")
        i=$((i + 1))
    done
    sox -n -r 8000 -c 1 -b 16 "$WORK/${name}_bass.wav" synth 3 sine "$(hz "$bass")" fade t 0.6 3 0.9 vol 0.2
    parts+=("$WORK/${name}_bass.wav")
    # Arpeggio: chord tones one octave up, up then down, 0.5 s each.
    local arp=() a
    read -r -a a <<<"$notes"
    for n in "${a[0]}" "${a[1]}" "${a[2]}" "${a[1]}" "${a[0]}" "${a[2]}"; do
        sox -n -r 8000 -c 1 -b 16 "$WORK/${name}_arp${#arp[@]}.wav" synth 0.5 pluck "$(hz $((n + 12)))" fade t 0.005 0.5 0.3 vol 0.1
        arp+=("$WORK/${name}_arp${#arp[@]}.wav")
    done
    sox "${arp[@]}" "$WORK/${name}_arp.wav"
    parts+=("$WORK/${name}_arp.wav")
    sox -m "${parts[@]}" "$WORK/$name.wav"
}
if [[ -z "${ONLY_SHARED:-}" ]] && wanted hold_music; then
    # Semitones from A4: C4=-9 E4=-5 G4=-2 A3=-12 F3=-16 G3=-14 B3=-10 D4=-7.
    chord c "-9 -5 -2" -21
    chord am "-12 -9 -5" -24
    chord f "-16 -12 -9" -28
    chord g "-14 -10 -7" -26
    sox "$WORK/c.wav" "$WORK/am.wav" "$WORK/f.wav" "$WORK/g.wav" \
        "$WORK/c.wav" "$WORK/am.wav" "$WORK/f.wav" "$WORK/g.wav" "$WORK/hold_raw.wav"
    rms="$(sox "$WORK/hold_raw.wav" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')"
    gain="$(awk -v r="$rms" 'BEGIN { printf "%.2f", -18 - 20 * log(r) / log(10) }')"
    sox "$WORK/hold_raw.wav" -r 8000 -c 1 -b 16 "$OUT/hold_music.wav" gain "$gain"
    DONE+=(hold_music)
fi

for n in "${ONLY[@]}"; do
    [[ " ${DONE[*]} " == *" $n "* ]] || { echo "unknown prompt name: $n" >&2; exit 1; }
done

echo "prompts written to $OUT:"
for n in "${DONE[@]}"; do
    printf '%-28s %6.2f s\n' "$n.wav" "$(soxi -D "$OUT/$n.wav")"
done
du -ch "$OUT"/*.wav | tail -1
