{{/* Names, labels and derived values shared by the templates. */}}

{{- define "fedstats.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fedstats.operatorName" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fedstats.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fedstats.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fedstats.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: fedstats
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fedstats.operatorSelector" -}}
app.kubernetes.io/name: fedstats-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fedstats.natsSelector" -}}
app.kubernetes.io/name: nats
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The fedstats image of nodes and the operator; "cuda" as the argument gives GPU peers'. */}}
{{- define "fedstats.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if eq .variant "cuda" -}}
{{- printf "%s:%s%s" .root.Values.image.repository $tag .root.Values.image.cudaSuffix -}}
{{- else -}}
{{- printf "%s:%s" .root.Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The NATS URL federations use: the in-chart server's Service (tls:// with TLS), or nats.url. */}}
{{- define "fedstats.natsUrl" -}}
{{- if .Values.nats.url -}}
{{- .Values.nats.url -}}
{{- else if .Values.nats.enabled -}}
{{- printf "%s://%s.%s.svc:4222" (ternary "tls" "nats" .Values.nats.tls.enabled) .Values.nats.name .Release.Namespace -}}
{{- else -}}
{{- fail "nats.url is required when nats.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* The security context of every container the chart runs: nothing to escalate to. */}}
{{- define "fedstats.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Secret the operator writes NATS's authorization into; the sidecar watches it. */}}
{{- define "fedstats.natsAuthSecret" -}}
{{- default (printf "%s-auth" .Values.nats.name) .Values.nats.auth.secretName -}}
{{- end -}}

{{/* The Secret holding NATS's certificate: tls.crt, tls.key and ca.crt. */}}
{{- define "fedstats.natsTlsSecret" -}}
{{- default (printf "%s-tls" .Values.nats.name) .Values.nats.tls.secretName -}}
{{- end -}}

{{- define "fedstats.authsyncImage" -}}
{{- default (include "fedstats.image" (dict "root" . "variant" "cpu")) .Values.nats.auth.image -}}
{{- end -}}

{{- define "fedstats.authsyncCommand" -}}
{{- list "python" "-m" "fedstats.operator.authsync" (printf "--secret=%s/%s" .Release.Namespace (include "fedstats.natsAuthSecret" .)) "--file=/etc/nats-auth/auth.conf" "--pid-file=/tmp/nats.pid" | toJson -}}
{{- end -}}
