{{/* Chart name, cut to the 63 characters Kubernetes allows in a label. */}}
{{- define "vecgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name used for every object of the release. */}}
{{- define "vecgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vecgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vecgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vecgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vecgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The label the database's NetworkPolicy admits. */}}
{{- define "vecgate.sidecarLabel" -}}
vecgate.io/sidecar: "true"
{{- end }}

{{- define "vecgate.image" -}}
{{- printf "%s:%s" .Values.vecgate.image.repository (default .Chart.AppVersion .Values.vecgate.image.tag) }}
{{- end }}

{{- define "vecgate.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "vecgate.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{/* The database's gRPC port the NetworkPolicy opens too, where vecgate proxies gRPC. */}}
{{- define "vecgate.databaseGrpcPort" -}}
{{- if .Values.networkPolicy.databaseGrpcPort }}
{{- .Values.networkPolicy.databaseGrpcPort }}
{{- else }}6334
{{- end }}
{{- end }}

{{/* The database port the NetworkPolicy opens: the value given, else the backend's REST port. */}}
{{- define "vecgate.databasePort" -}}
{{- if .Values.networkPolicy.databasePort }}
{{- .Values.networkPolicy.databasePort }}
{{- else if eq .Values.upstream.kind "qdrant" }}6333
{{- else }}8000
{{- end }}
{{- end }}

{{/*
vecgate's configuration file. Secret material never appears here: the HS256 key is read from
the environment variable VECGATE_JWT_SECRET, filled from an existing Secret.
*/}}
{{- define "vecgate.config" -}}
{{- $auth := deepCopy .Values.auth }}
{{- $keySources := 0 }}
{{- if .Values.jwtSecret.name }}{{ $keySources = add1 $keySources }}{{ end }}
{{- if hasKey $auth "jwks_url" }}{{ $keySources = add1 $keySources }}{{ end }}
{{- if hasKey $auth "public_key_file" }}{{ $keySources = add1 $keySources }}{{ end }}
{{- if hasKey $auth "hs256_secret_env" }}
{{- fail "auth.hs256_secret_env is set by the chart: name the Secret in jwtSecret.name instead" }}
{{- end }}
{{- if ne $keySources 1 }}
{{- fail "give exactly one key source: jwtSecret.name (HS256 secret), auth.jwks_url or auth.public_key_file" }}
{{- end }}
{{- if .Values.jwtSecret.name }}
{{- $_ := set $auth "hs256_secret_env" "VECGATE_JWT_SECRET" }}
{{- end }}
{{- if ne (empty .Values.vecgate.grpcPort) (empty .Values.upstream.grpc_url) }}
{{- fail "vecgate.grpcPort and upstream.grpc_url go together: set both (gRPC) or neither" }}
{{- end }}
listen: 127.0.0.1:{{ .Values.vecgate.port }}
{{- if .Values.vecgate.grpcPort }}
grpc_listen: 127.0.0.1:{{ .Values.vecgate.grpcPort }}
{{- end }}
admin_listen: 0.0.0.0:{{ .Values.vecgate.adminPort }}
mode: {{ .Values.vecgate.mode }}
upstream:
  {{- toYaml .Values.upstream | nindent 2 }}
auth:
  {{- toYaml $auth | nindent 2 }}
policies:
  dir: ./policies
  watch: {{ .Values.policies.watch }}
  evaluation: {{ .Values.policies.evaluation }}
{{- with .Values.collections }}
collections:
  {{- toYaml . | nindent 2 }}
{{- end }}
audit:
  {{- toYaml .Values.audit | nindent 2 }}
{{- with .Values.limits }}
limits:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
