{{/* The base name of every object: the release name, with the chart name unless it has it. */}}
{{- define "hla.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hla.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hla.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{- define "hla.grpcSecret" -}}
{{- default (printf "%s-grpc-tls" (include "hla.fullname" .)) .Values.grpc.tls.existingSecret -}}
{{- end -}}

{{- define "hla.grpcHost" -}}
{{- printf "%s-grpc.%s.svc" (include "hla.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The issuer of every certificate: the given one, or the chart's own CA. */}}
{{- define "hla.issuerRef" -}}
{{- if .Values.grpc.tls.certManager.issuer.name -}}
kind: {{ .Values.grpc.tls.certManager.issuer.kind | default "Issuer" }}
name: {{ .Values.grpc.tls.certManager.issuer.name }}
{{- else -}}
kind: Issuer
name: {{ include "hla.fullname" . }}-ca
{{- end -}}
{{- end -}}

{{- define "hla.caClientSecret" -}}
{{- default (printf "%s-cluster-autoscaler-grpc-client" (include "hla.fullname" .)) .Values.clusterAutoscaler.clientSecret -}}
{{- end -}}

{{/* The manager's --grpc-allowed-clients: cluster-autoscaler's certificate and the extra ones. */}}
{{- define "hla.allowedClients" -}}
{{- $ids := list -}}
{{- with .Values.grpc.tls.clientCommonName -}}
{{- $ids = append $ids (printf "cn:%s" .) -}}
{{- end -}}
{{- join "," (concat $ids .Values.grpc.allowedClients) -}}
{{- end -}}

{{/* The manager's ServiceAccount, as the subject of its bindings. */}}
{{- define "hla.managerSubject" -}}
- kind: ServiceAccount
  name: {{ include "hla.fullname" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/* The manager's --namespace: the watched namespaces, comma-separated, each once. */}}
{{- define "hla.watchNamespaces" -}}
{{- join "," (uniq .Values.watchNamespaces) -}}
{{- end -}}

{{/* Whether any agent is rendered: a wake segment listed, or the shutdown agent enabled. */}}
{{- define "hla.agentEnabled" -}}
{{- if or .Values.agent.wake.segments .Values.agent.shutdown.enabled -}}true{{- end -}}
{{- end -}}

{{- define "hla.agentNamespace" -}}
{{- .Values.agent.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The agents' ServiceAccount, as the subject of their bindings. */}}
{{- define "hla.agentSubject" -}}
- kind: ServiceAccount
  name: {{ include "hla.fullname" . }}-agent
  namespace: {{ include "hla.agentNamespace" . }}
{{- end -}}

{{/* Checks of the agent values. */}}
{{- define "hla.validateAgent" -}}
{{- $seen := dict -}}
{{- range $i, $s := .Values.agent.wake.segments -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString $s.name)) -}}
{{- fail (printf "agent.wake.segments[%d].name %q is not a segment name: a DNS label (lower case letters, digits and '-', at most 63), as in wakeOnLAN.via" $i (toString $s.name)) -}}
{{- end -}}
{{- if hasKey $seen $s.name -}}
{{- fail (printf "agent.wake.segments names %s twice: one DaemonSet serves a segment" $s.name) -}}
{{- end -}}
{{- $_ := set $seen $s.name true -}}
{{- if not $s.nodeSelector -}}
{{- fail (printf "agent.wake.segments[%d] (%s) needs a nodeSelector that picks the nodes on that segment: an agent elsewhere would broadcast on the wrong LAN" $i $s.name) -}}
{{- end -}}
{{- end -}}
{{- $probe := int .Values.agent.healthProbePort -}}
{{- $metrics := int .Values.agent.metricsPort -}}
{{- if or (lt $probe 1) (gt $probe 65535) -}}
{{- fail (printf "agent.healthProbePort %v must be a port from 1 to 65535: the kubelet probes it" .Values.agent.healthProbePort) -}}
{{- end -}}
{{- if or (lt $metrics 0) (gt $metrics 65535) (eq $metrics $probe) -}}
{{- fail (printf "agent.metricsPort %v must be 0 (off) or a port from 1 to 65535 other than agent.healthProbePort" .Values.agent.metricsPort) -}}
{{- end -}}
{{- if and (not .Values.watchAllNamespaces) (has (include "hla.agentNamespace" .) .Values.watchNamespaces) -}}
{{- fail (printf "watchNamespaces must not include the agents' namespace %s: it admits the agents' host-network and root pods, and the manager's rights in a watched namespace (get on every Secret, creating Jobs) would reach the agents' ServiceAccount" (include "hla.agentNamespace" .)) -}}
{{- end -}}
{{- end -}}

{{/* Checks of value combinations that cannot work. */}}
{{- define "hla.validate" -}}
{{- if hasKey .Values "watchNamespace" -}}
{{- fail "watchNamespace is gone: set watchNamespaces (a list, default [homelab-machines]), or watchAllNamespaces=true to watch every namespace (docs/install.md, \"Namespaces and permissions\")" -}}
{{- end -}}
{{- if not .Values.watchAllNamespaces -}}
{{- if not .Values.watchNamespaces -}}
{{- fail "watchNamespaces is empty: name the namespaces of your Groups and Machines, or set watchAllNamespaces=true" -}}
{{- end -}}
{{- if has .Release.Namespace .Values.watchNamespaces -}}
{{- fail (printf "watchNamespaces must not include the release namespace %s: the manager's rights in a watched namespace (get on every Secret, creating Jobs, which run as any ServiceAccount there) would reach its own gRPC keys and ServiceAccount" .Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.clusterAutoscaler.enabled (not .Values.grpc.tls.certManager.enabled) (not .Values.clusterAutoscaler.clientSecret) -}}
{{- fail "clusterAutoscaler.enabled needs grpc.tls.certManager.enabled or clusterAutoscaler.clientSecret (its client certificate)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas above 1 need leaderElection.enabled (otherwise every replica runs the controllers)" -}}
{{- end -}}
{{- if and .Values.grpc.tls.certManager.enabled .Values.grpc.tls.existingSecret -}}
{{- fail "set either grpc.tls.certManager.enabled or grpc.tls.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.grpc.allowAnyClient .Values.grpc.allowedClients -}}
{{- fail "set either grpc.allowAnyClient or grpc.allowedClients, not both" -}}
{{- end -}}
{{- if not (or .Values.grpc.allowAnyClient (include "hla.allowedClients" .)) -}}
{{- fail "the gRPC API needs the client certificates that may call: grpc.tls.clientCommonName or grpc.allowedClients (or grpc.allowAnyClient)" -}}
{{- end -}}
{{- if include "hla.agentEnabled" . -}}
{{- include "hla.validateAgent" . -}}
{{- end -}}
{{- if and .Values.grpc.tls.certManager.enabled (not .Values.grpc.tls.clientCommonName) -}}
{{- fail "grpc.tls.certManager.enabled needs grpc.tls.clientCommonName, the name cert-manager gives cluster-autoscaler's client certificate" -}}
{{- end -}}
{{- end -}}

{{/* The selector labels of an agent's pods: ctx is the root context, component agent-wake or
agent-shutdown. */}}
{{- define "hla.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* What both agents' pod specs hold. The token is mounted: the agents talk to the apiserver. */}}
{{- define "hla.agentPodCommon" -}}
serviceAccountName: {{ include "hla.fullname" . }}-agent
automountServiceAccountToken: true
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.agent.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* What both agents' containers hold but their arguments and security context. */}}
{{- define "hla.agentContainerCommon" -}}
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
command: ["/homelab-agent"]
env:
  # The agent's identity on the requests it takes, and the node whose shutdowns it serves.
  - name: NODE_NAME
    valueFrom:
      fieldRef:
        fieldPath: spec.nodeName
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
ports:
  {{- if .Values.agent.metricsPort }}
  - name: metrics
    containerPort: {{ .Values.agent.metricsPort }}
  {{- end }}
  - name: health
    containerPort: {{ .Values.agent.healthProbePort }}
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  initialDelaySeconds: 15
  periodSeconds: 20
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  periodSeconds: 10
resources:
  {{- toYaml .Values.agent.resources | nindent 2 }}
{{- end -}}

{{/* The arguments both agents take. */}}
{{- define "hla.agentArgs" -}}
- --metrics-bind-address={{ if .Values.agent.metricsPort }}:{{ .Values.agent.metricsPort }}{{ else }}0{{ end }}
- --health-probe-bind-address=:{{ .Values.agent.healthProbePort }}
- --zap-encoder={{ .Values.logging.encoder }}
- --zap-log-level={{ .Values.logging.level }}
{{- if not .Values.watchAllNamespaces }}
- --namespace={{ include "hla.watchNamespaces" . }}
{{- end }}
{{- end -}}
